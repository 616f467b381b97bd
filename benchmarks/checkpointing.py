"""Training time spent on checkpoints: asynchronous saves (the default) against synchronous.

    python -m benchmarks.checkpointing [--model vae_mlp] [--steps 300] [--every 10] [--pairs 3]

Builds the model's training step once (as ``experiments.main`` does, on synthetic data), then
runs the training loop (``jaxgen.training.fit``: steps, logging, the non-finite checks and a
checkpoint every ``--every`` steps, no evaluation) for ``--steps`` steps into a fresh directory,
alternating asynchronous and synchronous saves ``--pairs`` times. Prints the loop's wall time
of each and the median time saved per checkpoint; saves
``benchmarks/results/checkpointing_<model>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time


def build(model: str):
    from experiments import runner, settings

    config = importlib.import_module(f"experiments.configs.{model}").get_config()
    with config.unlocked():
        config.update_from_flattened_dict({"data.source": "synthetic",
                                           "data.synthetic_examples": 512,
                                           "train.progress": False})
    r = runner.Runner(*settings.from_config_dict(config), tempfile.mkdtemp(prefix="ckpt_"))
    r.checkpointer.close()
    return r


def loop_seconds(r, step, state, *, steps: int, every: int, asynchronous: bool) -> float:
    import jax

    from jaxgen.training import Checkpointer, MetricWriter, batches_of, fit

    t = r.settings.train
    loader = r.data.train_loader(t.batch_size, r.parallel.num_local_devices)
    with tempfile.TemporaryDirectory(prefix="ckpt_") as folder:
        ckpt = Checkpointer(os.path.join(folder, "checkpoints"), every_steps=every, keep=3,
                            asynchronous=asynchronous)
        writer = MetricWriter(folder, enabled=False)
        started = time.perf_counter()
        final, _, _ = fit(state=state, train_step=step, batches=batches_of(loader.batch),
                          parallel=r.parallel, train_key=r.keys["train"], num_steps=steps,
                          checkpointer=ckpt, writer=writer, log_every=every, progress=False)
        ckpt.close()  # the last save is written before the time is taken
        jax.block_until_ready(final)
        return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.checkpointing")
    p.add_argument("--model", default="vae_mlp")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--pairs", type=int, default=3)
    args = p.parse_args(argv)
    from benchmarks._common import RESULTS_DIR, machine_info, write_json
    from jaxgen.training import with_step_key

    r = build(args.model)
    step = r.compiled("train", with_step_key(r.family.train_body), donate=True)
    state = r.initial_state(args.steps)  # one state (its optimizer is part of the compiled step)
    loop_seconds(r, step, state, steps=2 * args.every, every=args.every, asynchronous=True)
    rows = []
    for _ in range(args.pairs):
        for asynchronous in (True, False):
            rows.append({"asynchronous": asynchronous, "seconds": loop_seconds(
                r, step, state, steps=args.steps, every=args.every,
                asynchronous=asynchronous)})
    med = {a: sorted(x["seconds"] for x in rows if x["asynchronous"] is a)[args.pairs // 2]
           for a in (True, False)}
    saves = args.steps // args.every
    print(f"{args.model}: {args.steps} steps, a checkpoint every {args.every} ({saves} saves); "
          f"loop wall time, median of {args.pairs}")
    print(f"  asynchronous saves: {med[True]:.2f} s")
    print(f"  synchronous saves:  {med[False]:.2f} s")
    print(f"  saved: {med[False] - med[True]:.2f} s ({(med[False] - med[True]) / saves * 1e3:.1f}"
          f" ms per checkpoint, {1 - med[True] / med[False]:.0%} of the loop)")
    path = write_json({"model": args.model, "steps": args.steps, "every": args.every,
                       "median_s": {"async": med[True], "sync": med[False]}, "runs": rows,
                       "machine": machine_info()},
                      os.path.join(RESULTS_DIR, f"checkpointing_{args.model}.json"), "ckpt")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
