"""Data-memory benchmark: the trainer's peak memory does not grow with the dataset.

Writes (once; reused from ``--cache_dir`` afterwards) folders of 64×64 RGB JPEGs in class
subfolders with :func:`jaxgen.data.generate.write_image_folder` — by default 20,000 and
200,000 images (200,000 × 64·64·3 bytes = 2.46 GB decoded, more than a trainer should hold) —
and for each runs the real trainer as a child process::

    python -m experiments.main --config experiments/configs/dcgan_folder64.py \
        --workdir <tmp> --config.data.path=<folder> --config.train.num_steps=N ...

with a small step budget and a small evaluation (``eval.max_examples`` = one batch, no image
grids), so that the run is dominated by training reads. Each child is waited for with
``os.wait4``, whose resource usage is that child's alone (its maximum resident set size, and
its user + system CPU time); one child per measurement, ``--repeats`` per folder (the folders
alternate), and the medians are compared.

XLA's compiler needs ~300 MB more than the run itself, and that part of the peak varies by tens
of MB between identical runs. So the children share a persistent compilation cache
(``JAX_COMPILATION_CACHE_DIR``: a fresh one per invocation unless already set), one untimed
warm-up run on the smallest folder fills it (its cold figures are reported too), and every
measured run loads the same executables from it: what differs between them is the data.

The script prints both peak RSS figures and their difference (the issue's floor: < 100 MB),
the wall time and the last logging window's training throughput of each run, and the cost of
the file list itself: the time and memory of :func:`jaxgen.data.records.scan_folder` +
``split_listing`` in a fresh process (what a run pays per file, whatever it reads).

Usage (from the repository root)::

    python -m benchmarks.data_memory                       # 20k vs 200k images (generates once)
    python -m benchmarks.data_memory --smoke               # 200 vs 2,000 16×16 images, 3 steps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any

DEFAULT_CACHE = os.path.join(tempfile.gettempdir(), "jaxgen_bench_data")
CONFIG = "experiments/configs/dcgan_folder64.py"
SIZE = 64  # image side
NUM_CLASSES = 10
MARKER = ".complete.json"  # a hidden file: scan_folder skips names starting with "."
FLOOR_MB = 100.0


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def image_folder(cache_dir: str, num_images: int, *, size: int = SIZE,
                 num_classes: int = NUM_CLASSES) -> tuple[str, dict[str, Any]]:
    """The cached folder of `num_images` toy JPEGs (written now when missing), and its record
    (``generated_s`` is None when it was reused)."""
    from jaxgen.data import generate

    path = os.path.join(cache_dir, f"folder{size}_c{num_classes}_{num_images}")
    marker = os.path.join(path, MARKER)
    if os.path.exists(marker):
        with open(marker) as f:
            record = json.load(f)
        return path, {**record, "generated_s": None}
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    print(f"writing {num_images:,} {size}×{size} JPEGs to {path} ...", flush=True)
    t0 = time.perf_counter()
    paths = generate.write_image_folder(
        partial, num_images=num_images, size=size, channels=3,
        classes=[f"class_{k}" for k in range(num_classes)], fmt="jpeg")
    seconds = time.perf_counter() - t0
    record = {"num_images": num_images, "size": size, "channels": 3,
              "num_classes": num_classes, "format": "jpeg",
              "disk_bytes": sum(os.path.getsize(p) for p in paths),
              "decoded_bytes": num_images * size * size * 3, "generation_s": seconds}
    with open(os.path.join(partial, MARKER), "w") as f:
        json.dump(record, f)
    os.rename(partial, path)
    print(f"  wrote in {seconds:.0f} s ({record['disk_bytes'] / 1e6:.0f} MB on disk)",
          flush=True)
    return path, {**record, "generated_s": seconds}


# Run in a fresh process (numpy + Pillow + jaxgen.data.records only): the file list's cost.
_LISTING_CODE = textwrap.dedent("""
    import json, resource, sys, time, tracemalloc
    from jaxgen.data.records import scan_folder, split_listing

    def rss_now():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    folder, fraction = sys.argv[1], float(sys.argv[2])
    base_now = rss_now()
    t0 = time.perf_counter()
    splits = split_listing(scan_folder(folder), fraction)
    seconds = time.perf_counter() - t0
    retained = rss_now() - base_now
    held = sum(s.files.nbytes + (0 if s.labels is None else s.labels.nbytes)
               for s in splits.values())
    del splits
    tracemalloc.start()  # a second pass, traced (slower): Python's and numpy's allocations
    splits = split_listing(scan_folder(folder), fraction)
    traced_held, traced_peak = tracemalloc.get_traced_memory()
    print(json.dumps({
        "num_files": sum(len(s.files) for s in splits.values()),
        "num_train": len(splits["train"].files),
        "scan_and_split_s": seconds,
        "arrays_bytes": held,
        "traced_peak_bytes": traced_peak,
        "traced_held_bytes": traced_held,
        "rss_retained_bytes": retained,
    }))
""")


def listing_cost(folder: str, test_fraction: float = 0.1) -> dict[str, Any]:
    """Time and memory of listing `folder` and splitting it, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _LISTING_CODE, folder, str(test_fraction)],
                         cwd=_repo_root(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def trainer_command(folder: str, workdir: str, args: argparse.Namespace) -> list[str]:
    """The trainer's command line for one measurement."""
    b = args.batch_size
    overrides = {
        "data.path": folder, "data.image_size": args.image_size,
        "data.workers": args.workers, "data.threads": args.threads,
        "train.num_steps": args.steps, "train.batch_size": b, "train.progress": False,
        "train.log_every": max(1, args.steps // 3), "train.eval_every": 0,
        "train.checkpoint_every": 10**9,  # only the final (forced) checkpoint
        "eval.num_images": 0, "eval.max_examples": b, "eval.batch_size": b,
        "model.generator_features": args.features,
        "model.discriminator_features": args.features,
    }
    return [sys.executable, "-m", "experiments.main", f"--config={CONFIG}",
            f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in overrides.items())]


def measure_trainer(command: list[str], log_path: str, env: dict[str, str]) -> dict[str, Any]:
    """Run `command` as one child; its own peak RSS (``os.wait4``), wall and CPU time."""
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        child = subprocess.Popen(command, cwd=_repo_root(), stdout=log,
                                 stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if child.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"the trainer exited with {child.returncode}:\n{tail}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux
    return {"peak_rss_bytes": int(usage.ru_maxrss * scale), "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def _run_record(n, folder, data, listing, repeats, batch_size) -> dict:
    """One folder's measurements: the medians over the repeats, and each repeat."""
    each = []
    for measured, summary, _ in repeats:
        steps_per_s = summary.get("train/steps_per_s")
        each.append({
            **measured,
            "num_train_examples": summary["data"]["num_examples"]["train"],
            "records_read": summary["bad_records"]["records_read"],
            "bad_records": summary["bad_records"]["bad_records"],
            "last_window_images_per_s": steps_per_s * batch_size if steps_per_s else None,
        })
    median = {k: statistics.median(e[k] for e in each)
              for k in ("peak_rss_bytes", "wall_s", "cpu_s")}
    speeds = [e["last_window_images_per_s"] for e in each if e["last_window_images_per_s"]]
    return {
        "num_images": n, "folder": folder, "data": data, "listing": listing,
        "command": repeats[0][2], **median,
        "peak_rss_bytes_min_max": [min(e["peak_rss_bytes"] for e in each),
                                   max(e["peak_rss_bytes"] for e in each)],
        "last_window_images_per_s": statistics.median(speeds) if speeds else None,
        "num_train_examples": each[0]["num_train_examples"],
        "records_read": each[0]["records_read"],
        "bad_records": max(e["bad_records"] for e in each),
        "repeats": each,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="images per folder (default 20000 200000; --smoke: 200 2000)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 30)")
    p.add_argument("--batch_size", type=int, default=None, help="global batch (default 64)")
    p.add_argument("--features", type=int, default=None,
                   help="generator and discriminator widths (default 16; the config's: 64)")
    p.add_argument("--image_size", type=int, default=None,
                   help="side of the generated JPEGs and data.image_size (default 64, the "
                        "config's; --smoke: 16, a DCGAN that compiles faster)")
    p.add_argument("--workers", type=int, default=0,
                   help="data.workers (0: reader threads in the trainer; with worker "
                        "processes, the peak RSS is the largest single process's)")
    p.add_argument("--threads", type=int, default=2, help="data.threads")
    p.add_argument("--repeats", type=int, default=None,
                   help="measured runs per folder, alternating; medians (default 3; --smoke: 1)")
    p.add_argument("--cache_dir", default=DEFAULT_CACHE, help="where the folders are kept")
    p.add_argument("--smoke", action="store_true", help="tiny folders and runs, a quick check")
    p.add_argument("--output", default=None,
                   help="JSON path (default: benchmarks/results/data_memory_<backend>_<time>.json)")
    a = p.parse_args(argv)
    small = {"sizes": [200, 2000], "steps": 3, "batch_size": 16, "features": 8,
             "image_size": 16, "repeats": 1}
    large = {"sizes": [20_000, 200_000], "steps": 30, "batch_size": 64, "features": 16,
             "image_size": SIZE, "repeats": 3}
    for k, v in (small if a.smoke else large).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if min(a.steps, a.batch_size, a.features, a.repeats) < 1 or min(a.sizes) < 20:
        p.error("--steps, --batch_size, --features and --repeats must be positive, "
                "--sizes >= 20")
    if a.image_size < 16 or a.image_size & (a.image_size - 1):
        p.error("--image_size must be a power of two >= 16 (DCGAN's stages)")
    return a


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from benchmarks import _common

    machine = _common.machine_info()
    print(_common.describe_machine(machine))
    folders = {n: image_folder(args.cache_dir, n, size=args.image_size) for n in args.sizes}
    env = dict(os.environ)
    own_cache = None
    if not env.get("JAX_COMPILATION_CACHE_DIR"):
        own_cache = tempfile.mkdtemp(prefix="jaxgen_data_memory_xla_")
        env["JAX_COMPILATION_CACHE_DIR"] = own_cache
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # cache every compile
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    def train(folder: str, what: str):
        with tempfile.TemporaryDirectory(prefix="jaxgen_data_memory_") as tmp:
            command = trainer_command(folder, os.path.join(tmp, "run"), args)
            print(f"{what}: training {args.steps} steps ...", flush=True)
            measured = measure_trainer(command, os.path.join(tmp, "log.txt"), env)
            with open(os.path.join(tmp, "run", "summary.json")) as f:
                summary = json.load(f)
        shown = " ".join(command[1:]).replace(os.path.join(tmp, "run"), "<tmp>")
        return measured, summary, shown

    try:
        smallest = min(args.sizes)
        warmup, _, _ = train(folders[smallest][0], f"warm-up ({smallest:,} images, compiles)")
        listings = {n: listing_cost(folders[n][0]) for n in args.sizes}
        repeats = {n: [] for n in args.sizes}
        for r in range(args.repeats):  # the sizes alternate: slow drifts hit both alike
            for n in args.sizes:
                repeats[n].append(train(folders[n][0], f"{n:,} images ({r + 1}/{args.repeats})"))
        runs = [_run_record(n, *folders[n], listings[n], repeats[n], args.batch_size)
                for n in args.sizes]
    finally:
        if own_cache is not None:
            shutil.rmtree(own_cache, ignore_errors=True)
    print(f"warm-up run (compiling, cache empty): peak RSS {warmup['peak_rss_bytes'] / 1e6:.1f} "
          f"MB, {warmup['wall_s']:.1f} s")
    mb = 1e6
    print()
    print(f"medians of {args.repeats} run(s) per folder")
    print(f"{'images':>9} {'decoded MB':>10} {'peak RSS MB':>11} {'(min–max)':>13} {'wall s':>7} "
          f"{'CPU s':>6} {'img/s':>6} {'list s':>6} {'list held MB':>12} {'list peak MB':>12}")
    for r in runs:
        lst = r["listing"]
        ips = r["last_window_images_per_s"]
        low, high = (v / mb for v in r["peak_rss_bytes_min_max"])
        print(f"{r['num_images']:>9,} {r['data']['decoded_bytes'] / mb:>10.0f} "
              f"{r['peak_rss_bytes'] / mb:>11.1f} {f'{low:.0f}–{high:.0f}':>13} "
              f"{r['wall_s']:>7.1f} {r['cpu_s']:>6.1f} "
              f"{ips if ips is not None else float('nan'):>6.0f} "
              f"{lst['scan_and_split_s']:>6.2f} {lst['traced_held_bytes'] / mb:>12.2f} "
              f"{lst['traced_peak_bytes'] / mb:>12.1f}")
    small = min(runs, key=lambda r: r["num_images"])
    large = max(runs, key=lambda r: r["num_images"])
    diff = large["peak_rss_bytes"] - small["peak_rss_bytes"]
    extra_files = large["num_images"] - small["num_images"]
    ok = diff / mb < FLOOR_MB
    print(f"\npeak RSS {small['peak_rss_bytes'] / mb:.1f} MB ({small['num_images']:,} images) → "
          f"{large['peak_rss_bytes'] / mb:.1f} MB ({large['num_images']:,} images): difference "
          f"{diff / mb:+.1f} MB ({diff / max(extra_files, 1):+.0f} bytes per extra file) — "
          f"{'within' if ok else 'ABOVE'} the {FLOOR_MB:.0f} MB floor; the larger folder "
          f"decodes to {large['data']['decoded_bytes'] / 1e9:.2f} GB")
    results = {
        "benchmark": "data_memory",
        "timestamp": _common.now_iso(),
        "machine": machine,
        "settings": {"config": CONFIG, "sizes": args.sizes, "image_size": args.image_size,
                     "steps": args.steps, "repeats": args.repeats,
                     "batch_size": args.batch_size, "features": args.features,
                     "workers": args.workers, "threads": args.threads,
                     "cache_dir": args.cache_dir, "smoke": args.smoke,
                     "rss_source": "os.wait4 rusage of the trainer child (ru_maxrss)"},
        "warmup_run": warmup,
        "runs": runs,
        "peak_rss_difference_bytes": diff,
        "peak_rss_difference_bytes_per_extra_file": diff / max(extra_files, 1),
        "floor_mb": FLOOR_MB,
        "within_floor": ok,
    }
    path = _common.write_json(results, args.output, "data_memory")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
