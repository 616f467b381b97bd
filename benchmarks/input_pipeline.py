"""Input-pipeline benchmark: ``TrainBatches.iterate`` throughput, per second and per CPU core.

Builds the training batches exactly as the runner does (``ImageDataConfig`` →
``jaxgen.data.datasets.ImageData.train_loader``, the GAN family's [−1, 1] input range) for

* ``folder``: a folder of 64×64 RGB JPEGs in 10 class subfolders
  (:func:`jaxgen.data.generate.write_image_folder`; the same cached folder as
  ``benchmarks/data_memory.py``), decoded with Pillow when a batch needs it;
* ``array_record``: a TFDS dataset of the same 64×64 toy images prepared as ArrayRecord
  (:func:`jaxgen.data.generate.write_array_record`), read by random access through
  ``builder.as_data_source``;
* ``fashion_mnist``: Fashion-MNIST as prepared by TFDS (TFRecord), read into memory once
  (28×28 grey, as stored) — the path the old loader had, for comparison;

each with the reading settings ``--settings WORKERS:THREADS`` (``data.workers`` grain
``mp_prefetch`` processes, each with ``data.threads`` reading threads; workers 0: the threads
read in this process). One iterator per setting reads ``--warmup`` batches (untimed: worker
start-up, first file opens), then ``--batches`` timed ones, and more until ``--min_seconds``
have passed. Besides images/s the script measures the CPU time the reading took — this
process's and its worker processes' (psutil) — over the timed window, so ``images per
CPU-second`` (images/s per core busy) is less sensitive to other work on a shared machine than
the wall-clock rate, and gives the cores a loader needs to keep up with a GPU step:
``rate / (images per CPU-second)``, for the GPU step rates in docs/benchmarks.md
(:data:`GPU_RATES`).

Usage (from the repository root)::

    python -m benchmarks.input_pipeline                 # generates the data once (cached)
    python -m benchmarks.input_pipeline --smoke         # tiny data, a few batches
    python -m benchmarks.input_pipeline --sources folder --settings 0:2 2:1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

from benchmarks import _common

SOURCES = ("folder", "array_record", "fashion_mnist")
DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "jaxgen_bench_data")
SIZE = 64
NUM_CLASSES = 10
# GPU training-step rates (images/s) from docs/benchmarks.md's H100 table (jax 0.11.2; synthetic
# batches kept on the device), per kind of data: what a loader must feed.
GPU_RATES = {
    "64x64 RGB": {
        "DCGAN 64×64 RGB, H100, batch 64": 13_237,
        "DCGAN 64×64 RGB, H100, batch 128": 16_003,
    },
    "28x28 grey": {
        "DCGAN 32×32 (Fashion-MNIST padded), H100, batch 128": 53_710,
        "MLP VAE, H100, batch 128": 301_097,
    },
}


def parse_setting(text: str) -> tuple[int, int]:
    try:
        workers, threads = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WORKERS:THREADS, e.g. 0:2") from None
    if workers < 0 or threads < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: workers must be >= 0, threads >= 1")
    return workers, threads


def folder_data(cache_dir: str, num_images: int) -> str:
    """The cached JPEG folder (``benchmarks.data_memory``'s layout), written when missing."""
    from benchmarks import data_memory

    path, _ = data_memory.image_folder(cache_dir, num_images, size=SIZE,
                                       num_classes=NUM_CLASSES)
    return path


def array_record_data(cache_dir: str, num_images: int) -> tuple[str, str]:
    """``(data_dir, name)`` of the cached ArrayRecord dataset, prepared when missing."""
    from jaxgen.data import generate

    data_dir = os.path.join(cache_dir, "tfds")
    name = f"blobs{SIZE}_{num_images}"
    if not os.path.exists(os.path.join(data_dir, name, "1.0.0", "dataset_info.json")):
        print(f"preparing TFDS {name} (ArrayRecord) in {data_dir} ...", flush=True)
        t0 = time.perf_counter()
        generate.write_array_record(data_dir, name=name, num_train=num_images,
                                    num_test=max(16, num_images // 10), size=SIZE,
                                    channels=3, num_classes=NUM_CLASSES)
        print(f"  prepared in {time.perf_counter() - t0:.0f} s", flush=True)
    return data_dir, name


def data_config(source: str, args: argparse.Namespace, workers: int, threads: int):
    """The ``ImageDataConfig`` a run on `source` would have."""
    from jaxgen.data.datasets import ImageDataConfig

    common = dict(workers=workers, threads=threads)
    if source == "folder":
        return ImageDataConfig(source="folder", path=folder_data(args.cache_dir, args.num_images),
                               image_size=SIZE, channels=3, resize="crop", **common)
    if source == "array_record":
        data_dir, name = array_record_data(args.cache_dir, args.num_images)
        return ImageDataConfig(source="tfds", name=name, data_dir=data_dir, image_size=SIZE,
                               channels=3, **common)
    return ImageDataConfig(source="tfds", name="fashion_mnist", data_dir=args.fmnist_data_dir,
                           **common)


def _cpu_times(process) -> dict[tuple[int, float], float]:
    """User + system CPU seconds of `process` and of each live descendant (the grain workers),
    keyed by (pid, start time)."""
    out = {}
    for p in [process, *process.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[(p.pid, p.create_time())] = t.user + t.system
        except Exception:  # a process that just exited  # noqa: BLE001
            continue
    return out


def _cpu_used(before: dict, after: dict) -> float:
    """CPU seconds spent between two :func:`_cpu_times` snapshots by the processes alive at
    the second (a process started in between counts from zero)."""
    return sum(t - before.get(key, 0.0) for key, t in after.items())


def _wait_for_workers(process, timeout: float = 20.0) -> None:
    """Let the worker processes of a finished iterator exit (they would idle into the next
    measurement); multiprocessing's resource tracker stays."""
    import psutil

    workers = [p for p in process.children() if "resource_tracker" not in " ".join(
        _cmdline(p))]
    psutil.wait_procs(workers, timeout=timeout)


def _cmdline(p) -> list[str]:
    try:
        return p.cmdline()
    except Exception:  # noqa: BLE001
        return []


def measure(loader, *, warmup: int, batches: int, min_seconds: float) -> dict[str, Any]:
    """Read `warmup` untimed batches of ``loader.iterate``, then time at least `batches` more,
    and more until `min_seconds` have passed (CPU times are counted in 10 ms ticks)."""
    import psutil

    me = psutil.Process()
    t_start = time.perf_counter()
    endless = min_seconds > 0
    it = loader.iterate(0, warmup + batches + (10**7 if endless else 0))
    first = next(it)
    first_batch_s = time.perf_counter() - t_start
    for _ in range(warmup - 1):
        next(it)
    images = timed = 0
    cpu0, t0 = _cpu_times(me), time.perf_counter()
    while timed < batches or time.perf_counter() - t0 < min_seconds:
        images += len(next(it)["image"])
        timed += 1
    wall, cpu = time.perf_counter() - t0, _cpu_used(cpu0, _cpu_times(me))
    if endless:
        it.close()  # stops grain's threads or worker processes
    else:
        next(it, None)  # the end of the range
    del it
    _wait_for_workers(me)
    return {
        "first_batch_s": first_batch_s,
        "timed_batches": timed,
        "images": images,
        "wall_s": wall,
        "cpu_s": cpu,
        "images_per_s": images / wall,
        "cores_busy": cpu / wall,
        "images_per_cpu_s": images / cpu if cpu > 0 else None,
        "batch_shape": list(first["image"].shape),
        "batch_dtype": str(first["image"].dtype),
    }


def cores_needed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each source and reading mode (``threads``: workers 0, GIL-bound in one process;
    ``processes``: grain workers, which scale past one process), the cores that feed each GPU
    step rate of :data:`GPU_RATES` at the mode's best images per CPU-second."""
    needs = []
    for source in dict.fromkeys(r["source"] for r in rows):
        kind = "28x28 grey" if source == "fashion_mnist" else "64x64 RGB"
        for mode, chosen in (("threads", lambda r: r["workers"] == 0),
                             ("processes", lambda r: r["workers"] > 0)):
            ours = [r for r in rows
                    if r["source"] == source and chosen(r) and r["images_per_cpu_s"]]
            if not ours:
                continue
            best = max(ours, key=lambda r: r["images_per_cpu_s"])
            for step, rate in GPU_RATES[kind].items():
                needs.append({"source": source, "mode": mode, "gpu_step": step,
                              "gpu_images_per_s": rate,
                              "images_per_cpu_s": best["images_per_cpu_s"],
                              "best_setting": f"{best['workers']}:{best['threads']}",
                              "cores_needed": rate / best["images_per_cpu_s"]})
    return needs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", nargs="+", choices=SOURCES, default=None,
                   help="default: all three (--smoke: folder and array_record)")
    p.add_argument("--settings", nargs="+", type=parse_setting, default=None,
                   metavar="WORKERS:THREADS",
                   help="data.workers:data.threads (default 0:1 0:2 1:1 1:2 2:1)")
    p.add_argument("--batch_size", type=int, default=None, help="global batch (default 128)")
    p.add_argument("--batches", type=int, default=None, help="timed batches (default 50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 5)")
    p.add_argument("--min_seconds", type=float, default=None,
                   help="read timed batches for at least this long (default 3; --smoke: 0)")
    p.add_argument("--num_images", type=int, default=None,
                   help="images of the generated folder and ArrayRecord set (default 20000)")
    p.add_argument("--cache_dir", default=DEFAULT_CACHE, help="where generated data is kept")
    p.add_argument("--fmnist_data_dir", default=None,
                   help="TFDS data_dir of Fashion-MNIST (default: TFDS's; prepared offline "
                        "from Debian's files when missing)")
    p.add_argument("--smoke", action="store_true", help="tiny data, a few batches")
    p.add_argument("--output", default=None,
                   help="JSON path (default: benchmarks/results/input_pipeline_<backend>_"
                        "<time>.json)")
    a = p.parse_args(argv)
    small = {"sources": ["folder", "array_record"], "settings": [(0, 2), (1, 1)],
             "batch_size": 32, "batches": 4, "warmup": 2, "num_images": 256,
             "min_seconds": 0.0}
    large = {"sources": list(SOURCES), "settings": [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)],
             "batch_size": 128, "batches": 50, "warmup": 5, "num_images": 20_000,
             "min_seconds": 3.0}
    for k, v in (small if a.smoke else large).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.batch_size < 1 or a.batches < 1 or a.warmup < 1 or a.num_images < 20:
        p.error("--batch_size, --batches and --warmup must be positive, --num_images >= 20")
    return a


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from jaxgen.data.datasets import ImageData

    machine = _common.machine_info()
    print(_common.describe_machine(machine))
    rows = []
    for source in args.sources:
        for workers, threads in args.settings:
            config = data_config(source, args, workers, threads)
            data = ImageData(config, input_range="symmetric", seed=0)
            t0 = time.perf_counter()
            try:
                loader = data.train_loader(args.batch_size, 1)
            except FileNotFoundError as e:  # includes TFDS's DatasetNotFoundError
                sys.exit(f"{source}: {e}")
            open_s = time.perf_counter() - t0
            print(f"{source} workers={workers} threads={threads} ...", flush=True)
            row = measure(loader, warmup=args.warmup, batches=args.batches,
                          min_seconds=args.min_seconds)
            rows.append({"source": source, "workers": workers, "threads": threads,
                         "num_train_examples": data.num_examples("train"),
                         "image_shape": list(data.image_shape), "open_s": open_s, **row})
    print()
    print(f"{'source':<14} {'workers':>7} {'threads':>7} {'img/s':>8} {'cores busy':>10} "
          f"{'img/CPU-s':>9} {'1st batch s':>11}")
    for r in rows:
        print(f"{r['source']:<14} {r['workers']:>7} {r['threads']:>7} "
              f"{r['images_per_s']:>8.0f} {r['cores_busy']:>10.2f} "
              f"{r['images_per_cpu_s'] or float('nan'):>9.0f} {r['first_batch_s']:>11.2f}")

    needs = cores_needed(rows)
    print("\ncores a loader needs to keep up with a GPU step (rate / best img per CPU-second of "
          "the reading mode):")
    for n in needs:
        print(f"  {n['source']:<14} {n['mode']:<9} {n['gpu_step']:<52} "
              f"{n['gpu_images_per_s']:>8,} img/s: {n['cores_needed']:6.1f} cores (at "
              f"{n['images_per_cpu_s']:.0f} img per CPU-s, setting {n['best_setting']})")

    results = {
        "benchmark": "input_pipeline",
        "timestamp": _common.now_iso(),
        "machine": machine,
        "settings": {
            "sources": args.sources,
            "settings_workers_threads": [list(s) for s in args.settings],
            "batch_size": args.batch_size, "batches": args.batches, "warmup": args.warmup,
            "min_seconds": args.min_seconds,
            "num_images": args.num_images, "cache_dir": args.cache_dir,
            "fmnist_data_dir": args.fmnist_data_dir, "smoke": args.smoke,
            "input_range": "symmetric (GAN)",
            "cpu_time": "psutil: this process + its live descendants, over the timed batches",
        },
        "results": rows,
        "gpu_rates_from_readme": GPU_RATES,
        "cores_needed": needs,
    }
    path = _common.write_json(results, args.output, "input_pipeline")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
