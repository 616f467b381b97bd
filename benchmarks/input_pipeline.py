"""Input-pipeline benchmark: ``TrainLoader.batch(step)`` throughput, with and without transfer.

Builds the training loader exactly as the runner does for an autoencoder config (the typed
settings, ``jaxgen.data.datasets.ImageData.train_loader`` with the family's input range) and
times, for consecutive steps:

* ``host``: ``loader.batch(step)``: gather a shuffled batch of uint8 images and scale it to
  float32 in [0, 1], on the host;
* ``host+transfer``: the same followed by ``DataParallel.shard_batch`` (host-to-device
  placement of the batch, split over the devices), waiting for the device arrays with
  ``jax.block_until_ready`` after every step, i.e. the full latency of one batch.

``fit`` produces each batch synchronously before dispatching the step, so where the step does
not overlap it (small CPU hosts) a batch costs its host time on top of the step time. When a
``python -m benchmarks.steps`` JSON from the same backend is in ``benchmarks/results/`` (or given
with ``--steps_json``), the script compares the two.

Usage (from the repository root)::

    python -m benchmarks.input_pipeline --data_dir /tmp/tfds_test     # Fashion-MNIST via TFDS
    python -m benchmarks.input_pipeline --source synthetic             # no dataset needed
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from benchmarks import _common
from experiments import settings
from jaxgen import families
from jaxgen.data.datasets import ImageData
from jaxgen.training import DataParallel

CONFIGS = ("vae_mlp", "vae_conv", "ae_mlp", "ae_conv")


def make_config(args: argparse.Namespace):
    """The experiment config with the data and batch settings of the command line."""
    config = importlib.import_module(f"experiments.configs.{args.config}").get_config()
    config.unlock()
    config.data.source = args.source
    if args.data_dir is not None:
        config.data.data_dir = args.data_dir
    config.data.synthetic_examples = args.synthetic_examples
    config.train.batch_size = args.batch_size
    config.lock()
    return config


def time_steps(fn, start: int, steps: int) -> float:
    """Seconds per call of ``fn(step)`` over steps ``start, ..., start + steps - 1``."""
    t0 = time.perf_counter()
    for step in range(start, start + steps):
        fn(step)
    return (time.perf_counter() - t0) / steps


def latest_train_step_results(path: str | None) -> tuple[str, dict[str, Any]] | None:
    """The given train_step JSON, or the newest one for this backend in benchmarks/results."""
    if path is None:
        pattern = os.path.join(_common.RESULTS_DIR, f"steps_{jax.default_backend()}_*.json")
        candidates = sorted(glob.glob(pattern), key=os.path.getmtime)
        if not candidates:
            return None
        path = candidates[-1]
    with open(path) as f:
        return path, json.load(f)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        choices=("tfds", "synthetic"),
        default="tfds",
        help="tfds: the configured dataset (Fashion-MNIST); synthetic: toy images, no dataset",
    )
    parser.add_argument("--data_dir", default=None, help="TFDS data_dir (config.data.data_dir)")
    parser.add_argument(
        "--config", choices=CONFIGS, default="vae_mlp", help="experiments/configs module"
    )
    parser.add_argument("--batch_size", type=int, default=128, help="global batch size")
    parser.add_argument("--steps", type=int, default=1000, help="timed batches per repeat")
    parser.add_argument("--warmup", type=int, default=20, help="untimed batches first")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows; median reported")
    parser.add_argument(
        "--synthetic_examples",
        type=int,
        default=10000,
        help="training examples of --source synthetic",
    )
    parser.add_argument(
        "--train_step_json",
        default=None,
        help="train_step.py results to compare with (default: newest for this backend)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="JSON path (default: benchmarks/results/input_pipeline_<backend>_<time>.json)",
    )
    args = parser.parse_args(argv)
    _common.check_timing_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = make_config(args)
    machine = _common.machine_info()
    print(_common.describe_machine(machine))

    run, _ = settings.from_config_dict(config)
    data = ImageData(run.data, input_range=families.get(run.family).input_range,
                     seed=run.seed)
    t0 = time.perf_counter()
    try:
        train = data.labelled("train")
    except FileNotFoundError as e:  # includes the dataset's DatasetNotFoundError
        sys.exit(f"{e}\nPass --data_dir DIR of a prepared TFDS dataset, or --source synthetic.")
    load_s = time.perf_counter() - t0
    parallel = DataParallel(run.train.parallel)
    loader = data.train_loader(run.train.batch_size, parallel.num_local_devices)
    steps_per_epoch = loader.steps_per_epoch
    num_examples = sum(len(a["image"]) for a in train)
    first = loader.batch(0)
    local_batch = len(first["image"])
    batch_bytes = sum(v.nbytes for v in first.values())
    print(
        f"{args.source} train split: {num_examples} examples in {len(train.arrays)} shard(s), "
        f"loaded in {load_s:.2f} s; batch {config.train.batch_size} "
        f"({batch_bytes / 2**20:.2f} MiB on the host), {steps_per_epoch} steps per epoch"
    )

    def host(step: int) -> None:
        loader.batch(step)

    def host_and_transfer(step: int) -> None:
        jax.block_until_ready(parallel.shard_batch(loader.batch(step)))

    modes = {"host": host, "host+transfer": host_and_transfer}
    rows = []
    for mode, fn in modes.items():
        if args.warmup:
            time_steps(fn, 0, args.warmup)
        start, times = args.warmup, []
        for _ in range(args.repeats):
            times.append(time_steps(fn, start, args.steps))
            start += args.steps
        t = _common.summarize(times)
        rows.append(
            {
                "mode": mode,
                "batch_time_s": t,
                "batch_time_s_per_repeat": times,
                "batches_per_s": 1.0 / t["median"],
                "images_per_s": local_batch / t["median"],
            }
        )
    print()
    print(f"{'mode':<14} {'ms/batch':>9} {'batches/s':>10} {'images/s':>10}")
    for r in rows:
        print(
            f"{r['mode']:<14} {1e3 * r['batch_time_s']['median']:>9.3f} "
            f"{r['batches_per_s']:>10.0f} {r['images_per_s']:>10.0f}"
        )

    comparison = None
    found = latest_train_step_results(args.train_step_json)
    pipe_s = rows[-1]["batch_time_s"]["median"]
    if found is not None:
        path, train_step = found
        comparison = {"train_step_json": path, "models": []}
        print(f"\ncompared with {os.path.relpath(path)} (host+transfer per batch vs train step):")
        for r in train_step["results"]:
            if r["global_batch_size"] != config.train.batch_size:
                continue
            step_s = r["step_time_s"]["median"]
            entry = {
                "model": r["model"],
                "train_images_per_s": r["images_per_s"],
                "pipeline_to_train_throughput": (local_batch / pipe_s) / r["images_per_s"],
                "pipeline_share_if_serial": pipe_s / (pipe_s + step_s),
            }
            comparison["models"].append(entry)
            print(
                f"  {r['model']:<9} step {1e3 * step_s:8.2f} ms ({r['images_per_s']:7.0f} "
                f"images/s): pipeline is {entry['pipeline_to_train_throughput']:.1f}x faster, "
                f"{100 * entry['pipeline_share_if_serial']:.1f}% of a serial step"
            )

    results = {
        "benchmark": "input_pipeline",
        "timestamp": _common.now_iso(),
        "machine": machine,
        "settings": {
            "source": args.source,
            "dataset": config.data.name if args.source == "tfds" else "synthetic",
            "data_dir": config.data.data_dir,
            "config": args.config,
            "batch_size": config.train.batch_size,
            "local_batch_size": local_batch,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "parallel": parallel.mode,
            "preprocess": "ImageData.preprocess (unit range)",
            "transfer_sync": "jax.block_until_ready after every batch",
        },
        "data": {
            "num_train_examples": num_examples,
            "num_shards": train.num_shards,
            "steps_per_epoch": steps_per_epoch,
            "load_s": load_s,
            "batch_bytes_host": int(batch_bytes),
            "batch_dtypes": {k: str(np.asarray(v).dtype) for k, v in first.items()},
        },
        "results": rows,
        "comparison_with_train_step": comparison,
    }
    path = _common.write_json(results, args.output, "input_pipeline")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
