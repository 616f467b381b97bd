"""Helpers shared by the benchmark scripts: machine description, memory, timing, JSON output."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import jax

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")


def _git_commit() -> str | None:
    """The checkout's commit, with ``-dirty`` when the working tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: backend, devices, CPUs, library versions, load."""
    import flax
    import jaxlib
    import numpy as np
    import optax

    devices = jax.devices()
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS
        usable_cpus = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "platform": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "num_devices": jax.device_count(),
        "num_local_devices": jax.local_device_count(),
        "process_count": jax.process_count(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "load_average_1_5_15m": load,
        "host": platform.node(),
        "os": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "git_commit": _git_commit(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def peak_memory() -> tuple[int | None, str]:
    """The process's peak memory so far, in bytes, and where the number comes from.

    Uses the first device's allocator statistics (``peak_bytes_in_use``) when the backend
    reports them (GPU, TPU); otherwise the host process's maximum resident set size.
    """
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device_memory_stats.peak_bytes_in_use"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(rss * scale), "host_ru_maxrss"


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def write_json(results: dict[str, Any], output: str | None, prefix: str) -> str:
    """Write `results` to `output`, or to ``benchmarks/results/<prefix>_<time>.json``."""
    if output is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        output = os.path.join(RESULTS_DIR, f"{prefix}_{jax.default_backend()}_{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    return output


def now_iso() -> str:
    """The current local time, ISO 8601 with the UTC offset."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def describe_machine(machine: dict[str, Any]) -> str:
    """One line naming the backend, devices, CPUs, jax version and load."""
    return (
        f"{machine['platform']} ({machine['device_kind']}) x{machine['num_devices']}, "
        f"{machine['usable_cpus']}/{machine['cpu_count']} CPUs, jax {machine['jax']}, "
        f"load {machine['load_average_1_5_15m']}"
    )


def check_timing_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject non-positive --steps/--repeats/--batch_size and a negative --warmup."""
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("--steps, --repeats and --batch_size must be positive, --warmup >= 0")


def cost_flops(compiled) -> float | None:
    """FLOPs of one execution of a lowered or compiled computation (per device), from XLA;
    None when the backend gives no estimate."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None
    if isinstance(analysis, dict):
        analysis = [analysis]
    flops = [a.get("flops") for a in analysis or [] if a]
    flops = [f for f in flops if f is not None and f >= 0]
    return float(sum(flops)) if flops else None


def memory_analysis(compiled) -> dict[str, int] | None:
    """XLA's static buffer sizes of a compiled computation (per device), in bytes."""
    try:
        stats = compiled.memory_analysis()
    except Exception:
        return None
    if stats is None:
        return None
    fields = ("argument", "output", "alias", "temp", "generated_code")
    out = {f"{k}_bytes": int(getattr(stats, f"{k}_size_in_bytes", 0)) for k in fields}
    out["total_bytes"] = (
        out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"] + out["temp_bytes"])
    return out
