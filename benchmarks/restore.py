"""Restoring a checkpoint for a reader (``--mode=sample``): time and peak host memory.

    python -m benchmarks.restore [--model ddpm_cifar10] [--repeats 3]

Writes one checkpoint of the config's initial state (synthetic data, so no dataset is
needed), then restores it in fresh processes two ways and prints, for each, the restore time
and the process's peak resident memory during the restore above what it held before (Linux's
``VmHWM``, reset just before):

* ``abstract`` — what ``Runner.restore`` does: the target is ``jax.eval_shape`` of the initial
  state with the devices' shardings, and the arrays are read straight onto the devices;
* ``concrete`` — the earlier way: initialise a real model and optimizer as the target, restore
  into it on the host, then copy the result to the devices (``DataParallel.replicate``).

Saves ``benchmarks/results/restore_<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

WAYS = ("abstract", "concrete")
OVERRIDES = {"data.source": "synthetic", "data.synthetic_examples": 16,
             "train.progress": False}


def _runner(model: str, workdir: str, *, read_only: bool = False):
    import importlib

    from experiments import runner, settings

    config = importlib.import_module(f"experiments.configs.{model}").get_config()
    with config.unlocked():
        config.update_from_flattened_dict(OVERRIDES)
    return runner.Runner(*settings.from_config_dict(config), workdir, read_only=read_only)


def write_checkpoint(model: str, workdir: str) -> int:
    """One checkpoint (step 0) of the config's initial state; returns its parameter count."""
    import jax

    r = _runner(model, workdir)
    state = r.initial_state()
    r.checkpointer.save(0, state, force=True)
    r.close()
    return sum(x.size for x in jax.tree.leaves(state.params))


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def measure(model: str, workdir: str, way: str) -> dict:
    """In this (fresh) process: restore the checkpoint `way`; time and peak memory (Linux:
    the peak is reset just before the restore, so it is the restore's own)."""
    import jax

    r = _runner(model, workdir, read_only=True)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size (VmHWM) to the current one
    before = _status_mib("VmRSS")
    started = time.perf_counter()
    if way == "abstract":
        state, _ = r.restore()
    else:
        state = r.parallel.replicate(r.checkpointer.restore(r.initial_state()))
    jax.block_until_ready(state)
    seconds = time.perf_counter() - started
    peak = _status_mib("VmHWM")
    return {"way": way, "restore_s": seconds, "rss_before_mib": before, "peak_rss_mib": peak,
            "peak_above_before_mib": peak - before}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.restore")
    p.add_argument("--model", default="ddpm_cifar10")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--_measure", nargs=3, metavar=("MODEL", "WORKDIR", "WAY"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._measure:
        print(json.dumps(measure(*args._measure)))
        return 0
    from benchmarks._common import RESULTS_DIR, write_json

    with tempfile.TemporaryDirectory(prefix="restore_") as workdir:
        params = write_checkpoint(args.model, workdir)
        rows = []
        for _ in range(args.repeats):
            for way in WAYS:  # alternate, so drift on the machine hits both
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.restore", "--_measure", args.model,
                     workdir, way], capture_output=True, text=True, check=True,
                    env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")})
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.model}: {params:,} parameters; restore for --mode=sample, {args.repeats} "
          "fresh processes each")
    print(f"{'way':>9} | {'restore s (median)':>18} | {'peak RSS above start MiB (median)':>33}")
    summary = {}
    for way in WAYS:
        mine = [r for r in rows if r["way"] == way]
        med = {k: sorted(r[k] for r in mine)[len(mine) // 2]
               for k in ("restore_s", "peak_above_before_mib", "peak_rss_mib")}
        summary[way] = med
        print(f"{way:>9} | {med['restore_s']:18.2f} | {med['peak_above_before_mib']:33.0f}")
    path = write_json({"model": args.model, "parameters": params, "summary": summary,
                       "runs": rows}, os.path.join(RESULTS_DIR, f"restore_{args.model}.json"),
                      "restore")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
