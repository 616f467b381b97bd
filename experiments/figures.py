"""The README's pictures, drawn from trained runs: a small sample grid per generating run and a
translation strip per CycleGAN run.

    python -m experiments.figures --workdirs runs/vae_mlp runs/ddpm_fmnist runs/dcgan_fmnist \
        runs/cyclegan_fmnist --out docs/images

Each workdir's latest checkpoint is restored read-only (:class:`experiments.runner.Runner`,
``read_only=True``): nothing is written into the workdir, and a trainer may be running in it.
For every run it writes into `--out`:

- ``<run>_samples.png``: `--num_images` samples from the run's own sampler
  (``sampling.sampler``, else the family's first), from a fixed key, so the picture is
  reproducible; a class-conditional run gets one row per class. ``--guidance W`` samples a
  class-conditional diffusion run with guidance weight w instead of its own
  ``sampling.guidance`` and writes ``<run>_samples_w<W>.png``.
- ``<run>_<direction>.png`` (CycleGAN): `--num_images` test images of the source domain (top
  row), their translations (middle) and the translations back (bottom): x, G(x), F(G(x)) for
  ``x2y`` and y, F(y), G(F(y)) for ``y2x``.
- ``<run>_reconstructions.png`` (an autoencoder that does not sample): test images beside their
  reconstructions.

It prints each file it wrote. The pictures are not metrics: the numbers are
``python -m experiments.results``'s.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np

from experiments import errors
from experiments import features as features_lib
from experiments import runner as runner_lib
from experiments import sweeps as sweeps_lib
from jaxgen.data.image_io import write_png
from jaxgen.families.base import to_unit
from jaxgen.training.collect import map_in_chunks
from jaxgen.training.writer import image_grid
from jaxgen.validation import ConfigError

DEFAULT_WORKDIRS = tuple(f"runs/{name}" for name in
                         ("vae_mlp", "ae_mlp", "ddpm_fmnist", "dcgan_fmnist", "cyclegan_fmnist"))
SEED = 0  # the figures' own key: the same picture from the same checkpoint


class MissingRunError(FileNotFoundError):
    """A workdir holds no run to draw."""


def run_name(workdir: str) -> str:
    return os.path.basename(os.path.normpath(workdir))


def sample_grid(r, device_state, num: int, columns: int) -> np.ndarray:
    """`num` samples of the run's sampler as one uint8 grid (a row per class when the run is
    class-conditional)."""
    sampler = r.family.sampling_config.sampler or r.family.samplers[0]
    labels = None
    if r.family.conditional:
        ids = r.class_ids(r.family.sampling_config.classes)[:10]
        columns = max(1, num // len(ids))
        labels = np.repeat(ids, columns)
        num = len(labels)
    images, _ = r.generate(device_state, sampler, num, jax.random.key(SEED), labels=labels)
    return image_grid(to_unit(images, r.family.input_range), columns=columns)


def preview_rows(r, device_state, name: str, num: int) -> np.ndarray:
    """The family's preview `name` (e.g. CycleGAN's ``translation_x``: x, G(x), F(G(x))) of
    `num` test images, as ``[num, k, H, W, C]`` in [0, 1]."""
    p = r.family.previews()[name]
    x = r.data.examples(p.domain, num)
    chunk = r.parallel.num_devices * -(-len(x) // r.parallel.num_devices)
    rows = map_in_chunks(r.compiled(f"preview_{name}", p.body, per_example=True), device_state,
                         {"image": x}, chunk=chunk, parallel=r.parallel,
                         key=jax.random.key(SEED))
    return to_unit(np.asarray(rows), r.family.input_range)


def strip(rows: np.ndarray) -> np.ndarray:
    """``[n, k, H, W, C]`` → a grid with k rows (the inputs on top) and n columns."""
    n, k = rows.shape[:2]
    return image_grid(np.swapaxes(rows, 0, 1).reshape(n * k, *rows.shape[2:]), columns=n)


def with_guidance(family_config, guidance: float, workdir: str):
    """`family_config` sampling with guidance weight `guidance` (a class-conditional
    diffusion run; anything else is a :class:`ConfigError`)."""
    if not hasattr(getattr(family_config, "sampling", None), "guidance"):
        raise ConfigError(f"--guidance: {workdir} has no guidance setting; only a "
                          "class-conditional diffusion run samples with guidance.")
    try:
        return sweeps_lib.with_sampling(family_config, guidance=float(guidance))
    except ConfigError as e:
        raise ConfigError(f"--guidance {guidance:g} on {workdir}: {e}") from None


def draw(workdir: str, out: str, *, num_images: int = 32, columns: int = 8,
         guidance: float | None = None) -> list[str]:
    """Write the pictures of one run into `out` (samples with guidance weight `guidance`
    when given); return their paths."""
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise MissingRunError(f"{workdir} holds no run (no config.json); train it first with "
                              f"python -m experiments.main --config CONFIG --workdir {workdir}")
    run_settings, family_config, _ = features_lib.read_settings(workdir)
    if guidance is not None:
        family_config = with_guidance(family_config, guidance, workdir)
    r = runner_lib.Runner(run_settings, family_config, workdir, read_only=True,
                          output_dir=out)
    name, written = run_name(workdir), []

    def save(suffix: str, grid: np.ndarray) -> None:
        path = os.path.join(out, f"{name}_{suffix}.png")
        write_png(path, grid)
        written.append(path)

    try:
        device_state, _ = r.restore()
        os.makedirs(out, exist_ok=True)
        previews = r.family.previews()
        if r.family.samplers:
            save("samples" if guidance is None else f"samples_w{guidance:g}",
                 sample_grid(r, device_state, num_images, columns))
        elif r.family.directions:
            for direction in r.family.directions:  # x2y: the preview of domain x, and so on
                preview = f"translation_{direction[0]}"
                save(direction, strip(preview_rows(r, device_state, preview, columns)))
        elif "reconstructions" in previews:
            rows = preview_rows(r, device_state, "reconstructions", num_images // 2)
            save("reconstructions", image_grid(
                rows.reshape(-1, *rows.shape[2:]), columns=2 * (columns // 2 or 1)))
    finally:
        r.close()
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.figures",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workdirs", nargs="+", default=list(DEFAULT_WORKDIRS),
                   help="finished (or running) runs to draw (default: %(default)s)")
    p.add_argument("--out", default="docs/images", help="folder for the PNGs")
    p.add_argument("--num_images", type=int, default=32, help="images per sample grid")
    p.add_argument("--columns", type=int, default=8,
                   help="columns of a sample grid; test images per translation strip")
    p.add_argument("--guidance", type=float, default=None,
                   help="sample a class-conditional diffusion run with this guidance weight w "
                        "(default: the run's own sampling.guidance)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    if args.num_images < 1 or args.columns < 1:
        p.error("--num_images and --columns must be at least 1.")
    try:
        for workdir in args.workdirs:
            for path in draw(workdir, args.out, num_images=args.num_images,
                             columns=args.columns, guidance=args.guidance):
                print(f"wrote {path}")
    except (MissingRunError, *errors.expected_errors()) as e:
        if args.debug:
            raise
        errors.report(errors.one_line(e))
        return errors.EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
