"""Sweeps of a diffusion run's sampling settings, scored like the results table's rows.

Two kinds, each given as ``--sweep KIND=VALUES`` to ``python -m experiments.results``:

* ``guidance=0,0.5,1,2,4``: the classifier-free guidance weight w (ε̃ = (1 + w)·ε(c) − w·ε(∅);
  the "guidance scale" of other codebases is s = 1 + w) of a class-conditional run, with the
  run's own sampler at its configured steps (``--sweep_sampler NAME[:STEPS]`` for another);
* ``steps=ddim:10,20,50;dpm_solver:10,20,50``: samplers and their ``sampling.<name>.steps``,
  ``;`` between samplers (a sampler without a steps setting, ``ddpm``, is named alone: all T
  steps), with the run's own guidance weight (``--sweep_guidance W`` for another).

Every point of a run's sweeps samples the same ``--sweep_samples`` images (equal numbers per
class for a conditional run: the count is rounded down to a multiple of the classes) from the
same noise and labels (the key of the table's rows), so the points differ only in the swept
setting; each point records its sampler, steps, network evaluations per sample (NFE: DDIM and
DPM-Solver++ ``steps``, Heun ``2·steps − 1``, DDPM T), guidance weight, sample count and
metrics: ``fd_<dataset>`` against the whole test split and, for a conditional run,
``class_accuracy`` and ``intra_fd_<dataset>`` (:func:`jaxgen.evaluation.suite.sweep_quality`).
Every sweep is checked against its run (the sampler exists and has steps, steps ≤ T, guidance
on a conditional run only) before anything compiles.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax

from experiments import features as features_lib
from experiments import runner as runner_lib
from jaxgen.evaluation import suite
from jaxgen.validation import ConfigError

KINDS = ("guidance", "steps")
DEFAULT_SWEEP_SAMPLES = 2000
DOC_START, DOC_END = "<!-- sweeps:start -->", "<!-- sweeps:end -->"
EXAMPLES = "--sweep guidance=0,0.5,1,2,4 or --sweep 'steps=ddim:10,20,50;dpm_solver:10,20,50'"


class SweepError(ValueError):
    """A sweep its run cannot make, or one written wrongly."""


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One ``--sweep``: `kind` and its values (``guidance`` weights, or ``(sampler, steps)``
    pairs with steps None for a sampler without a steps setting)."""

    kind: str
    values: tuple
    text: str


def parse(text: str) -> Sweep:
    """``guidance=0,0.5,1`` or ``steps=ddim:10,20;dpm_solver:10,20;ddpm``.

    Raises:
      SweepError: an unknown kind, no values, a weight that is negative or not finite, steps
        that are not positive integers, a sampler named twice with the same steps.
    """
    kind, sep, values = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in KINDS or not values.strip():
        raise SweepError(f"--sweep {text!r}: write KIND=VALUES with KIND one of "
                         f"{', '.join(KINDS)}, e.g. {EXAMPLES}.")
    if kind == "guidance":
        weights = []
        for v in values.split(","):
            try:
                w = float(v)
            except ValueError:
                w = math.nan
            if not math.isfinite(w) or w < 0:
                raise SweepError(f"--sweep {text!r}: guidance weight {v.strip()!r} must be a "
                                 "finite number ≥ 0 (w = scale s − 1).")
            weights.append(w)
        return Sweep(kind, tuple(dict.fromkeys(weights)), text)
    pairs = []
    for part in filter(None, (p.strip() for p in values.split(";"))):
        name, colon, counts = part.partition(":")
        name = name.strip()
        if not colon:
            pairs.append((name, None))
            continue
        for c in counts.split(","):
            if not c.strip().isdigit() or int(c) < 1:
                raise SweepError(f"--sweep {text!r}: steps {c.strip()!r} of {name} must be a "
                                 "positive integer.")
            pairs.append((name, int(c)))
    if not pairs:
        raise SweepError(f"--sweep {text!r}: name at least one sampler, e.g. {EXAMPLES}.")
    return Sweep(kind, tuple(dict.fromkeys(pairs)), text)


def parse_sampler(text: str) -> tuple[str, int | None]:
    """``--sweep_sampler``: ``NAME`` or ``NAME:STEPS``."""
    name, colon, steps = text.partition(":")
    if colon and (not steps.strip().isdigit() or int(steps) < 1):
        raise SweepError(f"--sweep_sampler {text!r}: write NAME or NAME:STEPS with STEPS a "
                         "positive integer, e.g. ddim:50.")
    return name.strip(), int(steps) if colon else None


def network_evaluations(sampler: str, settings, num_timesteps: int) -> int:
    """Network evaluations per sample (one batched call, guided or not): Heun ``2·steps − 1``;
    a sampler without a steps setting (DDPM) all T; others ``steps``."""
    steps = getattr(settings, "steps", None)
    if steps is None:
        return int(num_timesteps)
    return 2 * steps - 1 if sampler == "heun" else int(steps)


def with_sampling(family_config, **changes):
    """`family_config` with these ``sampling`` settings changed (validated by the sampling
    config itself: a bad value is a ``ConfigError``)."""
    return dataclasses.replace(family_config, sampling=dataclasses.replace(
        family_config.sampling, **changes))


@dataclasses.dataclass(frozen=True)
class Point:
    sampler: str
    steps: int | None
    guidance: float
    config: object  # the family config that samples this point
    nfe: int


def points(sweep: Sweep, workdir: str, family_config, samplers, conditional: bool, *,
           sampler: tuple[str, int | None] | None = None,
           guidance: float | None = None) -> list[Point]:
    """The family configs of `sweep`'s points on a run (`family_config`, its `samplers`).

    Args:
      sampler: the guidance sweep's sampler and steps (None: the run's ``sampling.sampler``
        at its configured steps).
      guidance: the steps sweep's guidance weight (None: the run's ``sampling.guidance``).

    Raises:
      SweepError: the run cannot make the sweep (one line naming the run and the fix).
    """
    sampling = getattr(family_config, "sampling", None)
    if sampling is None or not hasattr(sampling, "guidance") or not samplers:
        raise SweepError(f"--sweep {sweep.text}: {workdir} is not a diffusion run (its "
                         "sampling has no samplers with steps and guidance); sweep a diffusion "
                         "run.")
    if sweep.kind == "guidance":
        if not conditional:
            raise SweepError(f"--sweep {sweep.text}: {workdir} is unconditional, and guidance "
                             "needs a class-conditional run (model.class_conditional=True).")
        name, steps = sampler or (sampling.sampler or samplers[0], None)
        pairs = [(name, steps, w) for w in sweep.values]
    else:
        w = sampling.guidance if guidance is None else guidance
        if w and not conditional:
            raise SweepError(f"--sweep_guidance={w:g}: {workdir} is unconditional; guidance "
                             "needs a class-conditional run.")
        pairs = [(name, steps, w) for name, steps in sweep.values]
    out = []
    for name, steps, w in pairs:
        if name not in samplers:
            raise SweepError(f"--sweep {sweep.text}: {name!r} is not a sampler of {workdir}; "
                             f"choose from {', '.join(samplers)}.")
        own = getattr(sampling, name)
        if steps is not None:
            if not hasattr(own, "steps"):
                raise SweepError(f"--sweep {sweep.text}: {name} has no steps setting (it runs "
                                 f"every timestep); name it alone, without ':{steps}'.")
            own = dataclasses.replace(own, steps=steps)
        try:
            config = with_sampling(family_config, sampler=name, guidance=float(w),
                                   **{name: own})
        except ConfigError as e:
            raise SweepError(f"--sweep {sweep.text} on {workdir}: {e}") from None
        t = family_config.diffusion.num_timesteps
        out.append(Point(name, getattr(own, "steps", None), float(w), config,
                         network_evaluations(name, own, t)))
    return out


def check(workdir: str, sweeps: list[Sweep], *, sampler: tuple[str, int | None] | None = None,
          guidance: float | None = None) -> None:
    """Raise :class:`SweepError` unless every sweep fits the run in `workdir` (reads its
    settings; compiles nothing)."""
    run_settings, family_config, _ = features_lib.read_settings(workdir)
    r = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    try:
        for s in sweeps:
            points(s, workdir, family_config, r.family.samplers, r.family.conditional,
                   sampler=sampler, guidance=guidance)
    finally:
        r.close()


def run_sweeps(workdir: str, sweeps: list[Sweep], extractor, test_features, test_labels, *,
               num_samples: int = DEFAULT_SWEEP_SAMPLES,
               sampler: tuple[str, int | None] | None = None,
               guidance: float | None = None) -> list[dict]:
    """Score every point of `sweeps` on the run in `workdir` (its latest checkpoint, read
    only); one record per sweep: ``{"name", "workdir", "step", "kind", "sweep",
    "num_samples", "samples_per_class", "points": [...]}``."""
    run_settings, family_config, _ = features_lib.read_settings(workdir)
    base = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    try:
        planned = [(s, points(s, workdir, family_config, base.family.samplers,
                              base.family.conditional, sampler=sampler, guidance=guidance))
                   for s in sweeps]
        device_state, step = base.restore()
        labels, per_class = None, None
        if base.family.conditional:
            labels = suite.balanced_labels(base.family.num_classes, num_samples)
            per_class = len(labels) // base.family.num_classes
        count = len(labels) if labels is not None else num_samples
        key = jax.random.fold_in(base.keys["sample_inputs"], step)  # as the table's rows
        dataset = extractor.provenance["dataset"]
        records = []
        for sweep, plan in planned:
            scored = []
            for p in plan:
                print(f"  {os.path.basename(os.path.normpath(workdir))}: {p.sampler}"
                      + (f" {p.steps} steps" if p.steps else "") + f", w={p.guidance:g}",
                      flush=True)
                started = time.perf_counter()
                r = runner_lib.Runner(run_settings, p.config, workdir, read_only=True)
                try:
                    images, got = r.generate(device_state, p.sampler, count, key, labels=labels)
                finally:
                    r.close()
                feats, probs = extractor(images, r.family.input_range)
                scored.append({
                    "sampler": p.sampler, "steps": p.steps, "nfe": p.nfe,
                    "guidance": p.guidance, "num_samples": len(images),
                    "metrics": suite.sweep_quality(
                        test_features, feats, dataset=dataset, real_labels=test_labels,
                        fake_probs=probs, fake_labels=got),
                    "wall_time_s": time.perf_counter() - started})
            records.append({"name": os.path.basename(os.path.normpath(workdir)),
                            "workdir": os.path.abspath(workdir), "step": step,
                            "kind": sweep.kind, "sweep": sweep.text, "num_samples": count,
                            "samples_per_class": per_class, "points": scored})
    finally:
        base.close()
    return records


def fixed_setting(sweep: dict) -> str:
    """What a sweep holds fixed, as a name: its sampler and steps for a guidance sweep
    (``dpm_solver-20``), its guidance weight for a steps sweep (``w1``)."""
    p = sweep["points"][0]
    if sweep["kind"] == "guidance":
        return p["sampler"] + (f"-{p['steps']}" if p["steps"] else "")
    return f"w{p['guidance']:g}"


def merged(previous: list[dict], new: list[dict]) -> list[dict]:
    """`previous` sweeps with those of the same run, kind and fixed setting replaced by `new`
    (a steps sweep at w = 1 keeps the one at w = 0)."""
    def key(s):
        return s["workdir"], s["kind"], fixed_setting(s)

    replaced = {key(s) for s in new}
    return [s for s in previous if key(s) not in replaced] + new


def _fmt(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def to_markdown(sweeps: list[dict], dataset: str, *, figures: dict | None = None,
                relative_to: str | None = None) -> str:
    """The sweep table (a row per point) and its notes; `figures` (``{run: [paths]}``) are
    linked below it when they lie under `relative_to`'s folder (a docs page's images)."""
    fd, intra = suite.fd_name(dataset), suite.intra_fd_name(dataset)
    head = ["run", "sweep", "sampler", "steps", "NFE", "guidance w", "samples", fd, intra,
            "class_accuracy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sweeps:
        for p in s["points"]:
            m = p["metrics"]
            lines.append("| " + " | ".join([
                s["name"], s["kind"], p["sampler"], _fmt(p["steps"]), str(p["nfe"]),
                f"{p['guidance']:g}", str(p["num_samples"]),
                *(_fmt(m[k]["value"]) if k in m else "—" for k in (fd, intra,
                                                                  "class_accuracy"))]) + " |")
    counts = ", ".join(
        f"{s['name']} {s['kind']} ({fixed_setting(s)}): {s['num_samples']}"
        + (f" ({s['samples_per_class']} per class)" if s["samples_per_class"] else "")
        for s in sweeps)
    lines += ["", f"Samples per point: {counts}. The points of a sweep share their noise, labels "
              "and sample count, so they differ only in the swept setting; FD at these counts "
              "is biased upwards against the results table's, so compare points with each "
              f"other, not with the table. {fd} and {intra} (mean over classes of the FD "
              "between a class's samples and its test images) are measured in the feature "
              "classifier's features against the test split; class_accuracy is the share of "
              "samples it labels as the class asked for. NFE: network evaluations per sample "
              "(a guided step is one batched call); w is the guidance weight, the guidance "
              "scale of other codebases being s = 1 + w."]
    if figures and relative_to:
        base = os.path.dirname(os.path.abspath(relative_to))
        links = []
        for run, paths in figures.items():
            for path in paths:
                rel = os.path.relpath(os.path.abspath(path), base)
                if not rel.startswith(".."):
                    stem = os.path.splitext(os.path.basename(path))[0]
                    links.append(f"![{stem.replace('_', ' ')} ({run})]({rel})")
        if links:
            lines += [""] + links
    return "\n".join(lines) + "\n"


def insert_in_doc(path: str, fragment: str) -> bool:
    """Put `fragment` between :data:`DOC_START` and :data:`DOC_END` in `path`; False (nothing
    written) when the file or its markers are absent."""
    if not os.path.exists(path):
        return False
    with open(path) as f:
        text = f.read()
    if DOC_START not in text or DOC_END not in text:
        return False
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    with open(path, "w") as f:
        f.write(f"{head}{DOC_START}\n{fragment}{DOC_END}{tail}")
    return True
