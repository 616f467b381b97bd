"""How far each deterministic sampler lands from the probability-flow ODE's solution, on a
trained diffusion run: the same x_T (and labels) through every sampler, compared image by
image with a reference sampler run at many steps.

FD in a classifier's features says whether samples look like the data; it does not say how
accurately a sampler solves the ODE (a first-order sampler's error can even lower an FD). This
measures that directly, on the real network: the root-mean-square pixel difference (images in
[−1, 1]) between each sampler's samples and the reference's, from the same x_T.

    python -m benchmarks.sampler_error --workdir runs/ddpm_fmnist_cond \\
        --samplers 'ddim:10,20,50;dpm_solver:10,20,50' --reference dpm_solver:200 \\
        --num_samples 200 --guidance 1

Prints a table and writes ``benchmarks/results/sampler_error_<time>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax
import numpy as np

from benchmarks import _common
from experiments import features as features_lib
from experiments import runner as runner_lib
from experiments import sweeps as sweeps_lib
from jaxgen.evaluation import suite


def sample_all(workdir: str, samplers: str, reference: str, num_samples: int,
               guidance: float | None, clip_x0: bool | None = None) -> dict:
    """Samples of `reference` and of every sampler in `samplers` from one x_T; their RMS
    differences to the reference. `clip_x0` None keeps the run's ``sampling.clip_x0``."""
    run_settings, family_config, _ = features_lib.read_settings(workdir)
    base = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    try:
        plan = [p for text in (reference, samplers) for p in sweeps_lib.points(
            sweeps_lib.parse(f"steps={text}"), workdir, family_config, base.family.samplers,
            base.family.conditional, guidance=guidance)]
        if clip_x0 is not None:
            plan = [dataclasses.replace(p, config=sweeps_lib.with_sampling(p.config,
                                                                           clip_x0=clip_x0))
                    for p in plan]
        device_state, step = base.restore()
        labels = (suite.balanced_labels(base.family.num_classes, num_samples)
                  if base.family.conditional else None)
        count = len(labels) if labels is not None else num_samples
        key = jax.random.fold_in(base.keys["sample_inputs"], step)  # as the sweeps
        images, seconds = [], []
        for p in plan:
            r = runner_lib.Runner(run_settings, p.config, workdir, read_only=True)
            try:
                started = time.perf_counter()
                x, _ = r.generate(device_state, p.sampler, count, key, labels=labels)
                seconds.append(time.perf_counter() - started)
            finally:
                r.close()
            images.append(np.asarray(x, np.float64))
            print(f"  {p.sampler} {p.steps} steps, w={p.guidance:g}: {seconds[-1]:.0f} s",
                  flush=True)
    finally:
        base.close()
    ref = images[0]
    rows = []
    for p, x, s in zip(plan, images, seconds, strict=True):
        per_image = np.sqrt(np.mean((x - ref) ** 2, axis=tuple(range(1, x.ndim))))
        rows.append({"sampler": p.sampler, "steps": p.steps, "nfe": p.nfe,
                     "guidance": p.guidance, "rms_to_reference": float(per_image.mean()),
                     "rms_se": float(per_image.std(ddof=1) / np.sqrt(len(per_image))),
                     "max_abs_to_reference": float(np.abs(x - ref).max()),
                     "seconds_with_compile": s})
    return {"workdir": workdir, "step": int(step), "num_samples": count,
            "clip_x0": plan[0].config.sampling.clip_x0, "reference": rows[0],
            "rows": rows[1:]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sampler_error",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="a trained diffusion run")
    p.add_argument("--samplers", default="ddim:10,20,50;dpm_solver:10,20,50",
                   help="samplers and steps, as --sweep 'steps=…' of experiments.results")
    p.add_argument("--reference", default="dpm_solver:200",
                   help="the near-exact ODE solution to compare with (NAME:STEPS)")
    p.add_argument("--num_samples", type=int, default=200)
    p.add_argument("--guidance", type=float, default=None,
                   help="guidance weight w (default: the run's sampling.guidance)")
    p.add_argument("--no_clip_x0", action="store_true",
                   help="solve without clipping the predicted x0 to [-1, 1] (the plain ODE); "
                        "default: the run's sampling.clip_x0")
    p.add_argument("--output", default=None, help="JSON path (default: benchmarks/results/)")
    args = p.parse_args(argv)
    report = sample_all(args.workdir, args.samplers, args.reference, args.num_samples,
                        args.guidance, clip_x0=False if args.no_clip_x0 else None)
    ref = report["reference"]
    print(f"\n{report['workdir']} (step {report['step']}), {report['num_samples']} samples from "
          f"one x_T, w = {ref['guidance']:g}, clip_x0 {report['clip_x0']}; reference "
          f"{ref['sampler']} {ref['steps']} steps")
    print(f"{'sampler':>12} {'NFE':>5} {'RMS to reference':>18} {'max |diff|':>11}")
    for r in report["rows"]:
        print(f"{r['sampler']:>12} {r['nfe']:>5} {r['rms_to_reference']:>11.4f} ± "
              f"{r['rms_se']:.4f} {r['max_abs_to_reference']:>11.3f}")
    path = _common.write_json({"machine": _common.machine_info(), "time": _common.now_iso(),
                               **report}, args.output, "sampler_error")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
