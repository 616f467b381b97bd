"""One results table for every family: sample quality in classifier features, plus own metrics.

    python -m experiments.results [--workdirs runs/vae_mlp runs/ddpm_fmnist ...]
        [--num_samples 10000] [--eval_examples 0] [--classifier_workdir runs/classifier_<dataset>]
        [--readme]

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

A reference row scores real data the same way: a slice of the training set (the last
``num_samples`` images, never the test set itself) against the test set.

Writes ``results.json`` (every metric with its sample count, the run's steps, wall time and
hardware, and the pinned feature settings) and ``results.md`` in ``--output_dir``; ``--readme``
also puts the table between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
README.md. The classifier must be trained first (``experiments/configs/classifier_fmnist.py``
with the runs' data settings); ``--classifier_workdir`` defaults to ``runs/classifier_<dataset>``
for the runs' dataset, and a run on another dataset than the classifier's is an error naming
the command that trains the right one (CycleGAN on Fashion-MNIST classes is scored by the
Fashion-MNIST classifier; CycleGAN on other data gets its own metrics only).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import numpy as np

from experiments import errors
from experiments import features as features_lib
from experiments import runner as runner_lib
from experiments import workdir as workdir_lib
from jaxgen import families
from jaxgen.data.datasets import ImageData
from jaxgen.evaluation import suite
from jaxgen.training.writer import write_json

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
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
                     eval_examples: int = 0) -> list[dict]:
    """The run's rows: its own eval metrics and, as the family allows, its samples' quality,
    its codes' linear probe, or one row per translation direction."""
    run_settings, family_config, record = features_lib.read_settings(workdir)
    summary = workdir_lib.read_json(workdir, "summary.json") or {}
    r = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    started = time.perf_counter()
    try:
        device_state, step = r.restore()
        row = {"name": os.path.basename(os.path.normpath(workdir)), "family": r.family.name,
               "workdir": os.path.abspath(workdir), "config": record, "step": step,
               "train_wall_time_s": summary.get("wall_time_s"),
               "train_devices": summary.get("devices"),
               "metrics": suite.own_metrics(r.family.eval_passes(), r.evaluate(
                   device_state, step, max_examples=eval_examples))}
        rows = [row]
        if r.family.samplers:
            sampler = r.family.sampling_config.sampler or r.family.samplers[0]
            images, _ = r.generate(device_state, sampler, num_samples,
                                jax.random.fold_in(r.keys["sample_inputs"], step))
            feats, probs = extractor(images, r.family.input_range)
            row["sampler"] = sampler
            row["metrics"].update(suite.sample_quality(
                test_features, feats, probs, dataset=extractor.provenance["dataset"]))
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
    n = {row["name"]: row["metrics"][fd[0]]["num_samples"]
         for row in report["rows"] if fd and fd[0] in row["metrics"]}
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
        + (", ".join(f"{k} {v}" for k, v in n.items()) or "—")
        + (f" (fewer than the default {DEFAULT_SAMPLES}: FD is biased upwards at small counts)"
           if any(v < DEFAULT_SAMPLES for v in n.values()) else "")
        + f"; KID: {suite.KID_SUBSETS} subsets of ≤ {suite.KID_SUBSET_SIZE}; precision/recall "
        f"k = {suite.PR_K}. Linear probe: multinomial logistic regression "
        f"(L2 {suite.PROBE_L2:g}, standardised codes) "
        "fitted on the training split. "
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
        readme: str | None = None, merge: bool = False) -> dict:
    """Score `workdirs` and write the report (see the module docstring).

    `classifier_workdir` None: ``runs/classifier_<dataset>`` for the runs' dataset
    (:func:`default_classifier_workdir`).
    """
    started = time.perf_counter()
    check_workdirs(workdirs)
    runs = {w: features_lib.read_settings(w)[0] for w in workdirs}
    if classifier_workdir is None:
        classifier_workdir = default_classifier_workdir(runs)
    extractor = features_lib.load_classifier(classifier_workdir, data=scored_data(runs))
    check_datasets(runs, extractor)
    previous = _previous_report(output_dir, extractor, num_samples, eval_examples) if merge \
        else None
    test = real_images(extractor, "test")
    test_features, _ = suite.real_features(extractor, test)
    rows = [previous["rows"][0] if previous else
            reference_row(extractor, test_features, num_samples=num_samples)]
    for w in workdirs:
        print(f"evaluating {w} ...", flush=True)
        rows += evaluate_workdir(w, extractor, test_features, num_samples=num_samples,
                                 eval_examples=eval_examples)
    wall = time.perf_counter() - started
    if previous:  # keep the other runs' rows, in their order; these runs' rows replace theirs
        scored = {row["workdir"] for row in rows[1:]}
        kept = [row for row in previous["rows"][1:] if row["workdir"] not in scored]
        order = [row["workdir"] for row in previous["rows"][1:]]
        rows = rows[:1] + sorted(kept + rows[1:], key=lambda row: (
            order.index(row["workdir"]) if row["workdir"] in order else len(order)))
        wall += previous["wall_time_s"]
    report = {"features": dict(extractor.provenance), "num_test": len(test),
              "num_samples": num_samples, "eval_examples": eval_examples,
              "hardware": hardware(), "wall_time_s": wall, "rows": rows}
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, "results.json"), report)
    table = to_markdown(report)
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(table)
    if readme:
        insert_in_readme(readme, table)
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
                   help="also insert the table into README.md (or the given file)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    if args.num_samples < suite.PR_K + 1:
        p.error(f"--num_samples must be at least {suite.PR_K + 1}.")
    if args.eval_examples < 0:
        p.error("--eval_examples must be >= 0 (0: the whole test split).")
    try:
        run(args.workdirs, classifier_workdir=args.classifier_workdir,
            num_samples=args.num_samples, eval_examples=args.eval_examples,
            output_dir=args.output_dir, readme=args.readme, merge=args.merge)
    except (features_lib.MissingClassifierError, MissingRunError, MergeError,
            DatasetMismatchError,
            *errors.expected_errors()) as e:
        if args.debug:
            raise
        errors.report(errors.one_line(e))
        return errors.EXIT_ERROR
    print(f"wrote {args.output_dir}/results.md and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
