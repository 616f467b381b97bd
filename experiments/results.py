"""One results table for every family: sample quality in classifier features, plus own metrics.

    python -m experiments.results [--workdirs runs/vae_mlp runs/ddpm_fmnist ...]
        [--num_samples 10000] [--eval_examples 0] [--classifier_workdir runs/classifier_<dataset>]
        [--readme] [--figures_dir DIR]
        [--sweep guidance=0,0.5,1,2,4] [--sweep 'steps=ddim:10,20,50;dpm_solver:10,20,50']
        [--sweep_samples 2000] [--sweep_sampler NAME[:STEPS]] [--sweep_guidance W]
        [--sweeps_only] [--sweeps_doc docs/evaluation.md]

For each workdir (a finished run of any family; default :data:`DEFAULT_WORKDIRS`): read its
``config.json`` / ``summary.json``, restore its latest checkpoint read-only
(:class:`experiments.runner.Runner`) and measure

* the family's own evaluation (``eval/*``: reconstruction error and PSNR, VAE IWAE NLL, DDPM
  bits/dim, CycleGAN cycle L1) on ``--eval_examples`` test examples (default 0: the whole test
  split), each mean with its standard error;
* for families that generate, ``--num_samples`` samples compared with the test set in the
  features of a classifier trained on the same dataset (:mod:`jaxgen.evaluation.features`,
  scored by :mod:`jaxgen.evaluation.suite`): Fréchet distance ``fd_<dataset>``,
  ``kid_<dataset>`` (± its standard error), improved ``precision`` / ``recall`` (k = 3) and the
  ``label_entropy_nats`` of the predicted classes (``<dataset>``:
  :func:`jaxgen.evaluation.suite.dataset_name`, e.g. ``fd_fmnist`` for Fashion-MNIST);
* for families that encode (autoencoders), the ``linear_probe_accuracy`` of their codes (the
  VAE's posterior mean): a probe fitted on the whole training split, scored on the test split
  (:mod:`jaxgen.evaluation.probe`);
* for CycleGAN on Fashion-MNIST classes, one row per direction: the translated test images of
  the source class against the real test images of the target class (the same metrics), and
  the ``target_class_share``, the share of translations the classifier labels as the target
  class.

A class-conditional run (``model.class_conditional``, any family) samples equal numbers per
class (``num_samples`` rounded down to a multiple of the classes; the labels come out with the
samples) with its own ``sampling.guidance`` (a diffusion run's row is named ``<run> (w=…)``),
and its row adds ``class_accuracy`` (the share of samples the classifier labels as the class
asked for) and ``intra_fd_<dataset>`` (the mean over classes of the FD between that class's
samples and that class's test images) to the metrics over all classes.

A reference row scores real data the same way: a slice of the training set (the last
``num_samples`` images, never the test set itself) against the test set.

Sweeps (:mod:`experiments.sweeps`) of a diffusion run's sampling, each ``--sweep`` repeatable:

* ``--sweep guidance=0,0.5,1,2,4``: the guidance weight w of a class-conditional run (ε̃ =
  (1 + w)·ε(c) − w·ε(∅); other codebases' guidance scale is s = 1 + w), with the run's own
  sampler and steps, or ``--sweep_sampler NAME[:STEPS]`` (e.g. ``ddim:50``);
* ``--sweep 'steps=ddim:10,20,50;dpm_solver:10,20,50'``: samplers and their steps, ``;``
  between samplers (``ddpm`` alone: all T steps), with the run's own guidance weight or
  ``--sweep_guidance W``.

Every point of a run's sweeps draws the same ``--sweep_samples`` samples (default 2000; equal
numbers per class) from the same noise and labels, and records its sampler, steps, network
evaluations per sample (NFE), guidance weight, sample count, ``fd_<dataset>`` and, for a
conditional run, ``class_accuracy`` and ``intra_fd_<dataset>``. A sweep its run cannot make
(an unconditional run's guidance, an unknown sampler, steps above T) is a one-line error before
anything compiles. ``--sweeps_only`` makes only the sweeps: ``results.json`` keeps its table
rows (same classifier) and gets these runs' sweeps in place of their earlier ones.

Plots (PNG, :mod:`experiments.plots`) go to ``--figures_dir`` (default: ``--output_dir``):
``curves_<run>.png``, each scored run's training curves from its TensorBoard events (``train/*``
losses, ``eval/*`` test metrics with their standard errors);
``sweep_guidance_<run>_<sampler>-<steps>.png`` (FD and class accuracy against w) and
``sweep_steps_<run>_w<w>.png`` (FD and class accuracy against NFE, a line per sampler), each
named by what its sweep holds fixed: a steps sweep at another w is kept beside the first.
``--figures_dir docs/images`` puts them where the docs can embed them.

Writes ``results.json`` (every metric with its sample count, the run's steps, wall time and
hardware, and the pinned feature settings; the sweeps' points; the plots' paths) and
``results.md`` (the table, then the sweep table) in ``--output_dir``; ``--readme`` also puts
the table between ``<!-- results:start -->`` and ``<!-- results:end -->`` in README.md, and the
sweep table (with links to the plots that lie below the page's folder) between
``<!-- sweeps:start -->`` and ``<!-- sweeps:end -->`` in ``--sweeps_doc`` (default
docs/evaluation.md) when that page exists with those markers (otherwise a printed note).

The classifier must be trained first (``experiments/configs/classifier_fmnist.py`` with the
runs' data settings); ``--classifier_workdir`` defaults to ``runs/classifier_<dataset>``
for the runs' dataset, and a run on another dataset than the classifier's is an error naming
the command that trains the right one (CycleGAN on Fashion-MNIST classes is scored by the
Fashion-MNIST classifier; CycleGAN on other data gets its own metrics only).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import jax
import numpy as np

from experiments import errors, plots
from experiments import features as features_lib
from experiments import runner as runner_lib
from experiments import sweeps as sweeps_lib
from experiments import workdir as workdir_lib
from jaxgen import families
from jaxgen.data.datasets import ImageData
from jaxgen.evaluation import suite
from jaxgen.training.writer import write_json

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
DEFAULT_SWEEPS_DOC = "docs/evaluation.md"  # --readme puts the sweep table here (its markers)
DEFAULT_SAMPLES = 10000
# The README's runs at their documented budgets (experiments/configs/<name>.py).
DEFAULT_WORKDIRS = tuple(f"runs/{name}" for name in
                         ("vae_mlp", "ae_mlp", "ddpm_fmnist", "dcgan_fmnist", "cyclegan_fmnist"))


class MissingRunError(FileNotFoundError):
    """A workdir to score has no finished run."""


class MergeError(ValueError):
    """``--merge`` found no table to add to, or one made with other settings."""


class DatasetMismatchError(ValueError):
    """A run's dataset is not the one its feature classifier was trained on."""


def check_workdirs(workdirs) -> None:
    for w in workdirs:
        if not os.path.exists(os.path.join(w, "config.json")):
            config = f"experiments/configs/{os.path.basename(os.path.normpath(w))}.py"
            if not os.path.exists(config):
                config = "experiments/configs/<config>.py"
            raise MissingRunError(
                f"{w} holds no run (no config.json). Train it first: python -m "
                f"experiments.main --config {config} --workdir {w}")


def hardware() -> str:
    devices = jax.devices()
    return f"{len(devices)}× {devices[0].device_kind} ({jax.default_backend()}), " \
           f"{platform.machine()}, {os.cpu_count()} CPU cores"


def scored_dataset(run_settings) -> str | None:
    """The dataset whose classifier scores a run (:func:`jaxgen.evaluation.suite.dataset_name`
    of its data), or None for a CycleGAN run on data no classifier knows (Monet's paintings,
    other folders: its rows have its own metrics only). CycleGAN on Fashion-MNIST classes is
    scored by the Fashion-MNIST classifier (``fmnist``), on synthetic domains by a synthetic
    one."""
    data = run_settings.data
    if families.get(run_settings.family).data_kind == "unpaired" and data.source not in (
            "fashion_mnist", "synthetic"):
        return None
    return suite.dataset_name(data)


def default_classifier_workdir(runs: dict) -> str:
    """``runs/classifier_<dataset>`` for the dataset of the runs (``{workdir: RunSettings}``);
    Fashion-MNIST's when no run is scored in classifier features.

    Raises:
      DatasetMismatchError: the runs are on different datasets.
    """
    datasets = {w: d for w, s in runs.items() if (d := scored_dataset(s)) is not None}
    if len(set(datasets.values())) > 1:
        raise DatasetMismatchError(
            "the runs are on different datasets (" + ", ".join(
                f"{w}: {d}" for w, d in datasets.items()) + "); one table is scored in one "
            "classifier's features: score each dataset's runs in a call of its own.")
    dataset = next(iter(datasets.values()), features_lib.DEFAULT_DATASET)
    return features_lib.default_workdir(dataset)


def scored_data(runs: dict):
    """The data settings of the first run scored in classifier features (None: none is)."""
    return next((s.data for s in runs.values() if scored_dataset(s) is not None), None)


def check_datasets(runs: dict, extractor) -> None:
    """Every run scored in classifier features is on the classifier's dataset.

    Raises:
      DatasetMismatchError: one line naming the command that trains the run's classifier.
    """
    trained_on = extractor.provenance["dataset"]
    for w, s in runs.items():
        dataset = scored_dataset(s)
        if dataset is not None and dataset != trained_on:
            workdir = features_lib.default_workdir(dataset)
            raise DatasetMismatchError(
                f"{w} is a run on {dataset!r}, but the classifier in "
                f"{_short(extractor.provenance['workdir'])} was trained on {trained_on!r}; "
                f"train the {dataset!r} classifier with "
                f"`{features_lib.train_command(workdir, s.data)}` and pass "
                f"--classifier_workdir {workdir}.")


def classifier_data(extractor) -> ImageData:
    """The classifier's own dataset (its run's data settings), read as stored."""
    run_settings, _, _ = features_lib.read_settings(extractor.provenance["workdir"])
    return ImageData(run_settings.data, input_range="unit", seed=run_settings.seed)


def real_images(extractor, split: str, *, start: int = 0, stop: int | None = None
                ) -> np.ndarray:
    """Images ``start … stop − 1`` of `split` of the classifier's own dataset, uint8
    ``[N, H, W, C]``."""
    return classifier_data(extractor).images(split, start=start, stop=stop)["image"]


def evaluate_workdir(workdir: str, extractor, test_features, *, num_samples: int,
                     eval_examples: int = 0, test_labels=None) -> list[dict]:
    """The run's rows: its own eval metrics and, as the family allows, its samples' quality,
    its codes' linear probe, or one row per translation direction. A class-conditional run
    samples equal numbers per class (`num_samples` rounded down to a multiple of the classes)
    and adds ``class_accuracy`` and ``intra_fd_<dataset>`` (against `test_labels`'
    classes)."""
    run_settings, family_config, record = features_lib.read_settings(workdir)
    summary = workdir_lib.read_json(workdir, "summary.json") or {}
    r = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    started = time.perf_counter()
    try:
        device_state, step = r.restore()
        row = {"name": os.path.basename(os.path.normpath(workdir)), "family": r.family.name,
               "workdir": os.path.abspath(workdir), "config": record, "step": step,
               "train_wall_time_s": plots.training_seconds(plots.read_scalars(workdir), step)
               or summary.get("wall_time_s"),
               "train_devices": summary.get("devices"),
               "metrics": suite.own_metrics(r.family.eval_passes(), r.evaluate(
                   device_state, step, max_examples=eval_examples))}
        rows = [row]
        if r.family.samplers:
            sampling = r.family.sampling_config
            sampler = sampling.sampler or r.family.samplers[0]
            labels = suite.balanced_labels(r.family.num_classes, num_samples) \
                if r.family.conditional else None
            images, labels = r.generate(
                device_state, sampler, num_samples if labels is None else len(labels),
                jax.random.fold_in(r.keys["sample_inputs"], step), labels=labels)
            feats, probs = extractor(images, r.family.input_range)
            row["sampler"] = sampler
            dataset = extractor.provenance["dataset"]
            if labels is None:
                row["metrics"].update(suite.sample_quality(test_features, feats, probs,
                                                           dataset=dataset))
            else:
                row["metrics"].update(suite.conditional_quality(
                    test_features, test_labels, feats, probs, labels, dataset=dataset))
                row["samples_per_class"] = len(labels) // r.family.num_classes
                if hasattr(sampling, "guidance"):
                    row["guidance"] = sampling.guidance
                    row["name"] += f" (w={sampling.guidance:g})"
        probed = probe_metric(r, device_state) if r.family.encode_body is not None else None
        if probed is not None:
            row["metrics"]["linear_probe_accuracy"] = probed
        if r.family.directions and classifier_knows(run_settings, extractor):
            rows = translation_rows(r, device_state, extractor, row)
    finally:
        r.close()
    for each in rows:
        each["results_wall_time_s"] = time.perf_counter() - started
    return rows


def probe_metric(r, device_state) -> dict | None:
    """Linear-probe accuracy of the codes (a VAE's posterior mean): fit on every training
    example, scored on every test example. None for a family whose outputs are no codes
    (the classifier's features and probabilities)."""
    train, test = (r.codes(device_state, split) for split in ("train", "test"))
    return suite.linear_probe_metric(train, test)


def classifier_knows(run_settings, extractor) -> bool:
    """Whether a CycleGAN run's domains come from the classifier's own data: classes of
    Fashion-MNIST (``source="fashion_mnist"``) for a Fashion-MNIST classifier, or both
    synthetic; never Monet's paintings or other folders."""
    return scored_dataset(run_settings) == extractor.provenance["dataset"]


def translation_rows(r, device_state, extractor, run_row: dict) -> list[dict]:
    """One row per direction, in place of the run's row: translations of the source domain's
    test images against the target domain's real test images; on Fashion-MNIST also the share
    of translations the classifier puts in the target class. Each row keeps the run's own
    metrics of its source domain (``eval/cycle_l1_x`` goes with ``x2y``)."""
    data = r.settings.data
    classes = {"x": data.class_x, "y": data.class_y}
    test = {d: r.data.preprocess(r.data.images("test", d)["image"]) for d in classes}
    rows = []
    for direction in r.family.directions:
        source, target = direction[0], direction[-1]
        fake = r.translate_images(device_state, direction, test[source])
        real_feats, _ = extractor(test[target], r.family.input_range)
        feats, probs = extractor(fake, r.family.input_range)
        m = {k: v for k, v in run_row["metrics"].items() if k.endswith(f"_{source}")}
        m.update(suite.sample_quality(real_feats, feats, probs,
                                      dataset=extractor.provenance["dataset"]))
        if data.source == "fashion_mnist":
            m["target_class_share"] = suite.target_class_share(probs, classes[target])
        rows.append({**{k: v for k, v in run_row.items() if k != "metrics"},
                     "name": f"{run_row['name']} {direction}", "sampler": direction,
                     "metrics": m})
    return rows


def reference_row(extractor, test_features, *, num_samples: int) -> dict:
    """Real data scored like samples: the last `num_samples` training images of the
    classifier's dataset (never the test set itself) against the test features."""
    data = classifier_data(extractor)
    num_train = data.num_examples("train")
    held_out = data.images("train", start=max(0, num_train - num_samples))["image"]
    return {"name": "real data (train slice vs test)", "family": "data",
            "workdir": "", "step": None, "train_wall_time_s": None,
            "metrics": suite.real_quality(extractor, held_out, test_features,
                                          dataset=extractor.provenance["dataset"])}


def _fmt(x, digits=4) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _other(name: str, m: dict) -> str:
    value = f"{m['value']:.4g}" + (f" ± {m['se']:.2g}" if "se" in m else "")
    return f"{name.removeprefix('eval/')} {value} (n={m['num_samples']})"


def to_markdown(report: dict) -> str:
    """The table: one column per sample-quality metric present in the rows (``fd_<dataset>``,
    ``kid_<dataset>``, precision, recall, label entropy), every other metric in the last."""
    columns = suite.quality_columns({k for row in report["rows"] for k in row["metrics"]})
    head = ["run", "family", "steps", "train time (s)", *columns,
            "other metrics (± standard error, test examples n)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        m = row["metrics"]
        cells = [row["name"], row["family"], _fmt(row["step"]),
                 _fmt(row["train_wall_time_s"] and round(row["train_wall_time_s"]))]
        for k in columns:
            if k not in m:
                cells.append("—")
            elif "se" in m[k]:
                cells.append(f"{m[k]['value']:.4g} ± {m[k]['se']:.2g}")
            else:
                cells.append(_fmt(m[k]["value"]))
        cells.append(", ".join(_other(k, v) for k, v in sorted(m.items())
                               if k not in columns) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    f = report["features"]
    fd = [k for k in columns if k.startswith("fd_")]
    n = {row["name"]: (row["metrics"][fd[0]]["num_samples"], row.get("samples_per_class"))
         for row in report["rows"] if fd and fd[0] in row["metrics"]}
    conditional = any("class_accuracy" in row["metrics"] for row in report["rows"])
    lines += [
        "",
        f"Features: the {f['feature_dim']}-d penultimate layer of the classifier trained on "
        f"{f.get('data', 'tfds:fashion_mnist')} in `{_short(f['workdir'])}` (config "
        f"`{f['config']}`, seed {f['seed']}, step {f['step']}, test accuracy "
        f"{_fmt(f['test_accuracy'])}); FD and KID in these features are comparable only between "
        "runs scored with this classifier, and are not FID (no Inception features); "
        f"preprocessing: {f['preprocessing']}. "
        f"Reference: the {report['num_test']} test images (a CycleGAN direction: the target "
        "class's test images). Samples per row: "
        + (", ".join(f"{k} {v}" + (f" ({c} per class)" if c else "")
                     for k, (v, c) in n.items()) or "—")
        + (f" (fewer than the default {DEFAULT_SAMPLES}: FD is biased upwards at small counts)"
           if any(v < DEFAULT_SAMPLES for v, _ in n.values()) else "")
        + ("; a class-conditional row (w: its guidance weight) samples equal numbers per "
           "class: class_accuracy is the share the classifier labels as the class asked for, "
           "intra_fd the mean over classes of the FD between a class's samples and its test "
           "images" if conditional else "")
        + f"; KID: {suite.KID_SUBSETS} subsets of ≤ {suite.KID_SUBSET_SIZE}; precision/recall "
        f"k = {suite.PR_K}. Linear probe: multinomial logistic regression "
        f"(L2 {suite.PROBE_L2:g}, standardised codes) "
        "fitted on the training split. Train time: from each run's TensorBoard log, the sum "
        "over logging windows of steps / steps_per_s, across resumes (evaluations and saves "
        "during training included). "
        f"Hardware: {report['hardware']}. The table took {report['wall_time_s'] / 60:.0f} min "
        "to compute.",
    ]
    return "\n".join(lines) + "\n"


def _short(path: str) -> str:
    """`path` relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def insert_in_readme(readme: str, table: str) -> None:
    with open(readme) as f:
        text = f.read()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} … {README_END} markers.")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    with open(readme, "w") as f:
        f.write(f"{head}{README_START}\n{table}{README_END}{tail}")


def run(workdirs=DEFAULT_WORKDIRS, *, classifier_workdir: str | None = None,
        num_samples=DEFAULT_SAMPLES, eval_examples: int = 0, output_dir="runs/results",
        readme: str | None = None, merge: bool = False, sweeps=(),
        sweep_samples: int = sweeps_lib.DEFAULT_SWEEP_SAMPLES,
        sweep_sampler: tuple[str, int | None] | None = None,
        sweep_guidance: float | None = None, sweeps_only: bool = False,
        figures_dir: str | None = None, sweeps_doc: str = DEFAULT_SWEEPS_DOC) -> dict:
    """Score `workdirs` and write the report (see the module docstring).

    `classifier_workdir` None: ``runs/classifier_<dataset>`` for the runs' dataset
    (:func:`default_classifier_workdir`). `sweeps`: :class:`experiments.sweeps.Sweep` s made on
    every workdir (`sweeps_only`: no table rows; the output folder's ``results.json`` keeps
    its rows and gets these sweeps). Plots go to `figures_dir` (default: `output_dir`).
    """
    started = time.perf_counter()
    check_workdirs(workdirs)
    runs = {w: features_lib.read_settings(w)[0] for w in workdirs}
    if classifier_workdir is None:
        classifier_workdir = default_classifier_workdir(runs)
    extractor = features_lib.load_classifier(classifier_workdir, data=scored_data(runs))
    check_datasets(runs, extractor)
    if sweeps_only and not sweeps:
        raise sweeps_lib.SweepError("--sweeps_only needs at least one --sweep.")
    for w in workdirs if sweeps else ():  # every sweep fits its run, before anything compiles
        sweeps_lib.check(w, sweeps, sampler=sweep_sampler, guidance=sweep_guidance)
    if sweeps_only:
        previous = _previous_for_sweeps(output_dir, extractor)
    else:
        previous = _previous_report(output_dir, extractor, num_samples, eval_examples) \
            if merge else None
    test_set = classifier_data(extractor).images("test")
    test, test_labels = test_set["image"], test_set.get("label")
    test_features, _ = suite.real_features(extractor, test)
    dataset = extractor.provenance["dataset"]
    if sweeps_only:
        rows = previous["rows"] if previous else []
    else:
        rows = [previous["rows"][0] if previous else
                reference_row(extractor, test_features, num_samples=num_samples)]
        for w in workdirs:
            print(f"evaluating {w} ...", flush=True)
            rows += evaluate_workdir(w, extractor, test_features, num_samples=num_samples,
                                     eval_examples=eval_examples, test_labels=test_labels)
    figures_dir = figures_dir or output_dir
    new_sweeps = []
    for w in workdirs if sweeps else ():
        print(f"sweeping {w} ...", flush=True)
        new_sweeps += sweeps_lib.run_sweeps(w, list(sweeps), extractor, test_features,
                                            test_labels, num_samples=sweep_samples,
                                            sampler=sweep_sampler, guidance=sweep_guidance)
    figures = draw_figures(workdirs, new_sweeps, figures_dir, dataset)
    wall = time.perf_counter() - started
    if previous and not sweeps_only:  # keep the other runs' rows, in their order
        scored = {row["workdir"] for row in rows[1:]}
        kept = [row for row in previous["rows"][1:] if row["workdir"] not in scored]
        order = [row["workdir"] for row in previous["rows"][1:]]
        rows = rows[:1] + sorted(kept + rows[1:], key=lambda row: (
            order.index(row["workdir"]) if row["workdir"] in order else len(order)))
        wall += previous["wall_time_s"]
    kept_sweeps = previous.get("sweeps", []) if previous else []
    report = {"features": dict(extractor.provenance), "num_test": len(test),
              "num_samples": num_samples, "eval_examples": eval_examples,
              "hardware": hardware(), "wall_time_s": wall, "rows": rows,
              "sweeps": sweeps_lib.merged(kept_sweeps, new_sweeps),
              "figures": merged_figures(previous.get("figures", {}) if previous else {},
                                        figures)}
    if sweeps_only:  # the table's own settings and time stay those of its rows
        report.update({k: previous[k] for k in ("num_samples", "eval_examples", "wall_time_s",
                                                "hardware") if previous and k in previous})
        report["sweeps_wall_time_s"] = time.perf_counter() - started
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, "results.json"), report)
    table = to_markdown(report) if report["rows"] else ""
    sweep_table = sweeps_lib.to_markdown(report["sweeps"], dataset) if report["sweeps"] else ""
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(table + (f"\n## Sweeps\n\n{sweep_table}" if sweep_table else ""))
    if readme:
        if table and not sweeps_only:
            insert_in_readme(readme, table)
        if sweep_table:
            fragment = sweeps_lib.to_markdown(report["sweeps"], dataset,
                                              figures=report["figures"], relative_to=sweeps_doc)
            if sweeps_lib.insert_in_doc(sweeps_doc, fragment):
                print(f"wrote the sweep table into {sweeps_doc}")
            else:
                print(f"note: {sweeps_doc} does not exist or has no {sweeps_lib.DOC_START} … "
                      f"{sweeps_lib.DOC_END} markers; the sweep table is in "
                      f"{output_dir}/results.md only.")
    return report


def merged_figures(previous: dict[str, list[str]], new: dict[str, list[str]]
                   ) -> dict[str, list[str]]:
    """Each run's figures, the previous ones first, each path once: a second sweep of a run
    adds its plot beside the first's."""
    return {run: list(dict.fromkeys(previous.get(run, []) + new.get(run, [])))
            for run in {**previous, **new}}


def draw_figures(workdirs, new_sweeps: list[dict], figures_dir: str, dataset: str
                 ) -> dict[str, list[str]]:
    """Each run's training curves (``curves_<run>.png``) and a plot per sweep
    (``sweep_guidance_<run>_<sampler>-<steps>.png``, ``sweep_steps_<run>_w<w>.png``: named by
    what the sweep holds fixed) in `figures_dir`; returns ``{run: [paths]}`` and records each
    sweep's plot in it (``"figure"``)."""
    out: dict[str, list[str]] = {}
    fd = suite.fd_name(dataset)
    for w in workdirs:
        name = os.path.basename(os.path.normpath(w))
        path = plots.curves_plot(w, os.path.join(figures_dir, f"curves_{name}.png"),
                                 title=f"{name}: training curves")
        if path:
            out.setdefault(name, []).append(path)
    for s in new_sweeps:
        n = s["num_samples"]
        path = os.path.join(figures_dir, f"sweep_{s['kind']}_{s['name']}_"
                                         f"{sweeps_lib.fixed_setting(s)}.png")
        if s["kind"] == "guidance":
            p = s["points"][0]
            title = (f"{s['name']}: guidance sweep ({p['sampler']}, {p['nfe']} NFE, "
                     f"{n} samples per point)")
            s["figure"] = plots.guidance_plot(s["points"], path, fd=fd, title=title)
        else:
            w = s["points"][0]["guidance"]
            title = f"{s['name']}: steps sweep (w = {w:g}, {n} samples per point)"
            s["figure"] = plots.steps_plot(s["points"], path, fd=fd, title=title)
        out.setdefault(s["name"], []).append(s["figure"])
    return out


def _previous_for_sweeps(output_dir, extractor) -> dict | None:
    """The report in `output_dir` that ``--sweeps_only`` adds its sweeps to (None: none
    yet); one made with another classifier is an error (its numbers would not compare)."""
    report = workdir_lib.read_json(output_dir, "results.json")
    if report is None:
        return None
    same = (report["features"].get("workdir"), report["features"].get("step"))
    if same != (extractor.provenance.get("workdir"), extractor.provenance.get("step")):
        raise MergeError(f"--sweeps_only: {output_dir}/results.json was made with another "
                         "classifier; pass another --output_dir or run the whole table "
                         "again.")
    return report


def _previous_report(output_dir, extractor, num_samples, eval_examples) -> dict:
    """The report in `output_dir` that ``--merge`` adds to; it must have been made with the
    same classifier and sample counts."""
    report = workdir_lib.read_json(output_dir, "results.json")
    if report is None:
        raise MergeError(f"--merge: {output_dir}/results.json does not exist; run the "
                         "command without --merge first.")
    same = (report["features"].get("workdir"), report["features"].get("step"),
            report["num_samples"], report.get("eval_examples"))
    if same != (extractor.provenance.get("workdir"), extractor.provenance.get("step"),
                num_samples, eval_examples):
        raise MergeError(f"--merge: {output_dir}/results.json was made with another classifier "
                         "or other --num_samples/--eval_examples; run the whole table again.")
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.results",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workdirs", nargs="+", default=list(DEFAULT_WORKDIRS),
                   help="finished runs to score (default: %(default)s)")
    p.add_argument("--classifier_workdir", default=None,
                   help="the feature classifier's run (default: runs/classifier_<dataset> for "
                        "the runs' dataset, e.g. runs/classifier_fmnist)")
    p.add_argument("--num_samples", type=int, default=DEFAULT_SAMPLES,
                   help="samples per generating run (and real training images)")
    p.add_argument("--eval_examples", type=int, default=0,
                   help="test examples for the families' own metrics (0: the whole split)")
    p.add_argument("--output_dir", default="runs/results")
    p.add_argument("--merge", action="store_true",
                   help="re-score only --workdirs and keep the other rows of the output_dir's "
                        "results.json (same classifier and sample counts)")
    p.add_argument("--readme", nargs="?", const="README.md", default=None,
                   help="also insert the table into README.md (or the given file), and the "
                        "sweep table into --sweeps_doc")
    p.add_argument("--sweep", action="append", default=[], metavar="KIND=VALUES",
                   help="a sampling sweep of each (diffusion) run, repeatable: "
                        "guidance=0,0.5,1,2,4 or 'steps=ddim:10,20,50;dpm_solver:10,20,50'")
    p.add_argument("--sweep_samples", type=int, default=sweeps_lib.DEFAULT_SWEEP_SAMPLES,
                   help="samples per sweep point, the same for every point "
                        "(default: %(default)s)")
    p.add_argument("--sweep_sampler", default=None, metavar="NAME[:STEPS]",
                   help="the guidance sweep's sampler (default: the run's sampling.sampler "
                        "at its steps)")
    p.add_argument("--sweep_guidance", type=float, default=None, metavar="W",
                   help="the steps sweep's guidance weight (default: the run's "
                        "sampling.guidance)")
    p.add_argument("--sweeps_only", action="store_true",
                   help="make only the sweeps (and curves): no table rows; the output_dir's "
                        "results.json keeps its rows")
    p.add_argument("--figures_dir", default=None,
                   help="where the PNG plots go (default: --output_dir), e.g. docs/images")
    p.add_argument("--sweeps_doc", default=DEFAULT_SWEEPS_DOC,
                   help="the page whose <!-- sweeps:start/end --> markers --readme fills with "
                        "the sweep table, if it exists (default: %(default)s)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    if args.num_samples < suite.PR_K + 1:
        p.error(f"--num_samples must be at least {suite.PR_K + 1}.")
    if args.eval_examples < 0:
        p.error("--eval_examples must be >= 0 (0: the whole test split).")
    if args.sweep_samples < 2:
        p.error("--sweep_samples must be at least 2 (a covariance needs two samples).")
    if args.sweep_guidance is not None and not (math.isfinite(args.sweep_guidance)
                                                and args.sweep_guidance >= 0):
        p.error(f"--sweep_guidance={args.sweep_guidance} must be a finite number >= 0.")
    try:
        sweeps = [sweeps_lib.parse(text) for text in args.sweep]
        sampler = sweeps_lib.parse_sampler(args.sweep_sampler) if args.sweep_sampler else None
        run(args.workdirs, classifier_workdir=args.classifier_workdir,
            num_samples=args.num_samples, eval_examples=args.eval_examples,
            output_dir=args.output_dir, readme=args.readme, merge=args.merge, sweeps=sweeps,
            sweep_samples=args.sweep_samples, sweep_sampler=sampler,
            sweep_guidance=args.sweep_guidance, sweeps_only=args.sweeps_only,
            figures_dir=args.figures_dir, sweeps_doc=args.sweeps_doc)
    except (features_lib.MissingClassifierError, MissingRunError, MergeError,
            DatasetMismatchError, sweeps_lib.SweepError,
            *errors.expected_errors()) as e:
        if args.debug:
            raise
        errors.report(errors.one_line(e))
        return errors.EXIT_ERROR
    print(f"wrote {args.output_dir}/results.md and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
