"""One results table for every family: sample quality in classifier features, plus own metrics.

    python -m experiments.results --workdirs runs/vae_mlp runs/ddpm_fmnist runs/dcgan_fmnist
        [--num_samples 10000] [--classifier_workdir runs/classifier_fmnist] [--readme]

For each workdir (a finished run of any family): read its ``config.json`` / ``summary.json``,
restore its latest checkpoint read-only (:class:`experiments.runner.Runner`), run the family's
own evaluation (``eval/*``), and, for families that generate, draw ``--num_samples`` samples
and compare their classifier features (:mod:`jaxgen.evaluation.features`) with those of the
Fashion-MNIST test set: Fréchet distance ``fd_fmnist``, ``kid_fmnist`` (± its standard error),
improved ``precision`` / ``recall`` (k = 3) and the ``label_entropy_nats`` of the predicted
classes. A reference row scores real data the same way: a slice of the training set (the last
``num_samples`` images, never the test set itself) against the test set.

Writes ``results.json`` (every metric with its sample count, the run's steps, wall time and
hardware, and the pinned feature settings) and ``results.md`` in ``--output_dir``; ``--readme``
also puts the table between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
README.md. The classifier must be trained first (``experiments/configs/classifier_fmnist.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

import jax
import numpy as np

from experiments import features as features_lib
from experiments import runner as runner_lib
from experiments import workdir as workdir_lib
from jaxgen.data.datasets import ImageData
from jaxgen.evaluation import diversity, metrics
from jaxgen.training.metrics import write_json

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
PR_K = 3
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
DEFAULT_SAMPLES = 10000


def hardware() -> str:
    devices = jax.devices()
    return f"{len(devices)}× {devices[0].device_kind} ({jax.default_backend()}), " \
           f"{platform.machine()}, {os.cpu_count()} CPU cores"


def sample_quality(real_features, fake_features, fake_probs, *, seed: int = 0) -> dict:
    """Each metric as ``{"value", "num_samples", "num_reference"}`` (KID adds ``"se"``)."""
    n, n_ref = len(fake_features), len(real_features)
    out = {}

    def put(name, value, **extra):
        out[name] = {"value": float(value), "num_samples": n, "num_reference": n_ref, **extra}

    put("fd_fmnist", metrics.frechet_distance_from_features(real_features, fake_features))
    kid, se = metrics.kid(real_features, fake_features, num_subsets=KID_SUBSETS,
                          subset_size=KID_SUBSET_SIZE, seed=seed)
    put("kid_fmnist", kid, se=se, subset_size=min(KID_SUBSET_SIZE, n, n_ref),
        num_subsets=KID_SUBSETS)
    precision, recall = diversity.precision_recall(real_features, fake_features, k=PR_K)
    put("precision", precision, k=PR_K)
    put("recall", recall, k=PR_K)
    put("label_entropy_nats", diversity.label_entropy(fake_probs))
    return out


def real_images(extractor, split: str) -> np.ndarray:
    """Every image of `split` of the classifier's own dataset, uint8 ``[N, H, W, C]``."""
    run_settings, _, _ = features_lib.read_settings(extractor.provenance["workdir"])
    data = ImageData(run_settings.data, input_range="unit", seed=run_settings.seed)
    return np.concatenate([s["image"] for s in data.labelled(split)])


def evaluate_workdir(workdir: str, extractor, test_features, *, num_samples: int) -> dict:
    """One row: the run's own eval metrics and, if it generates, its samples' quality."""
    run_settings, family_config, record = features_lib.read_settings(workdir)
    summary = workdir_lib.read_json(workdir, "summary.json") or {}
    # No grids: evaluation here only reads the workdir.
    run_settings = dataclasses.replace(
        run_settings, eval=dataclasses.replace(run_settings.eval, num_images=0))
    r = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    started = time.perf_counter()
    try:
        device_state, step = r.restore()
        own = r.evaluate(device_state, step)
        row = {"name": os.path.basename(os.path.normpath(workdir)), "family": r.family.name,
               "workdir": os.path.abspath(workdir), "config": record, "step": step,
               "train_wall_time_s": summary.get("wall_time_s"),
               "train_devices": summary.get("devices"), "metrics": {}}
        for name, p in r.family.eval_passes().items():
            count = int(own[f"eval/{name}_num_examples"])
            for m in p.metrics:
                row["metrics"][f"eval/{m}"] = {"value": own[f"eval/{m}"], "num_samples": count}
        if r.family.samplers:
            sampler = family_config.sampling.sampler or r.family.samplers[0]
            images = r.generate(device_state, sampler, num_samples,
                                jax.random.fold_in(r.keys["sample_inputs"], step))
            feats, probs = extractor(images, r.family.input_range)
            row["sampler"] = sampler
            row["metrics"].update(sample_quality(test_features, feats, probs))
    finally:
        r.close()
    row["results_wall_time_s"] = time.perf_counter() - started
    return row


def reference_row(extractor, test_features, *, num_samples: int) -> dict:
    train = real_images(extractor, "train")
    held_out = train[-min(num_samples, len(train)):]
    feats, probs = extractor(held_out.astype(np.float32) / 255.0, "unit")
    return {"name": "real data (train slice vs test)", "family": "data",
            "workdir": "", "step": None, "train_wall_time_s": None,
            "metrics": sample_quality(test_features, feats, probs)}


METRIC_COLUMNS = ("fd_fmnist", "kid_fmnist", "precision", "recall", "label_entropy_nats")


def _fmt(x, digits=4) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def to_markdown(report: dict) -> str:
    head = ["run", "family", "steps", "train time (s)", *METRIC_COLUMNS, "own eval metrics"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        m = row["metrics"]
        cells = [row["name"], row["family"], _fmt(row["step"]),
                 _fmt(row["train_wall_time_s"] and round(row["train_wall_time_s"]))]
        for k in METRIC_COLUMNS:
            if k not in m:
                cells.append("—")
            elif k == "kid_fmnist":
                cells.append(f"{m[k]['value']:.4g} ± {m[k]['se']:.2g}")
            else:
                cells.append(_fmt(m[k]["value"]))
        own = [f"{k[5:]} {v['value']:.4g}" for k, v in sorted(m.items()) if k.startswith("eval/")]
        cells.append(", ".join(own) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    f = report["features"]
    n = {row["name"]: row["metrics"]["fd_fmnist"]["num_samples"]
         for row in report["rows"] if "fd_fmnist" in row["metrics"]}
    lines += [
        "",
        f"Features: the {f['feature_dim']}-d penultimate layer of the Fashion-MNIST classifier "
        f"in `{_short(f['workdir'])}` (config `{f['config']}`, seed {f['seed']}, step {f['step']}, "
        f"test accuracy {_fmt(f['test_accuracy'])}); preprocessing: {f['preprocessing']}. "
        f"Reference: the {report['num_test']} test images. Samples per row: "
        + (", ".join(f"{k} {v}" for k, v in n.items()) or "—")
        + (f" (fewer than the default {DEFAULT_SAMPLES}: FD is biased upwards at small counts)"
           if any(v < DEFAULT_SAMPLES for v in n.values()) else "")
        + f"; KID: {KID_SUBSETS} subsets of ≤ {KID_SUBSET_SIZE}; precision/recall k = {PR_K}. "
        f"Hardware: {report['hardware']}.",
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


def run(workdirs, *, classifier_workdir=features_lib.DEFAULT_WORKDIR, num_samples=DEFAULT_SAMPLES,
        output_dir="runs/results", readme: str | None = None) -> dict:
    extractor = features_lib.load_classifier(classifier_workdir)
    test = real_images(extractor, "test")
    test_features, _ = extractor(test.astype(np.float32) / 255.0, "unit")
    rows = [reference_row(extractor, test_features, num_samples=num_samples)]
    for w in workdirs:
        print(f"evaluating {w} ...", flush=True)
        rows.append(evaluate_workdir(w, extractor, test_features, num_samples=num_samples))
    report = {"features": dict(extractor.provenance), "num_test": len(test),
              "num_samples": num_samples, "hardware": hardware(), "rows": rows}
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, "results.json"), report)
    table = to_markdown(report)
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(table)
    if readme:
        insert_in_readme(readme, table)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.results",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--workdirs", nargs="+", required=True, help="finished runs to score")
    p.add_argument("--classifier_workdir", default=features_lib.DEFAULT_WORKDIR)
    p.add_argument("--num_samples", type=int, default=DEFAULT_SAMPLES,
                   help="samples per generating run (and real training images)")
    p.add_argument("--output_dir", default="runs/results")
    p.add_argument("--readme", nargs="?", const="README.md", default=None,
                   help="also insert the table into README.md (or the given file)")
    args = p.parse_args(argv)
    if args.num_samples < PR_K + 1:
        p.error(f"--num_samples must be at least {PR_K + 1}.")
    try:
        run(args.workdirs, classifier_workdir=args.classifier_workdir,
            num_samples=args.num_samples, output_dir=args.output_dir, readme=args.readme)
    except features_lib.MissingClassifierError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output_dir}/results.md and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
