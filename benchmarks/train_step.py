"""Training-step benchmark for the AE and VAE experiments (MLP and conv variants).

Builds each model's compiled training step exactly as ``experiments.autoencoders.Experiment``
does (same config, model, initial parameters, optimizer, ``make_terms`` /
``make_train_body`` / ``with_step_key`` and ``DataParallel.compile``), then measures on a fixed
synthetic batch already on the devices:

* ``lower_s`` / ``compile_s``: tracing + lowering, and XLA compilation, timed separately
  ahead of time (``step.lower(...)`` then ``.compile()``; the jitted step reuses both, so its
  ``first_call_s`` is only the first execution);
* steady-state throughput (images/s, ms/step) over ``--steps`` steps after ``--warmup``
  steps, repeated ``--repeats`` times (median reported), synchronised with
  ``jax.block_until_ready`` at the end of each timed window; a slow step gets fewer timed
  steps so that each model's timing stays within ``--max_seconds`` (the JSON records how many);
* FLOPs per step from XLA's cost analysis of the compiled step, and the achieved GFLOP/s;
* peak memory: device ``peak_bytes_in_use`` where the backend reports it, else the process's
  max RSS (the JSON names the source), plus XLA's static memory analysis of the step.

The data pipeline is excluded (see ``benchmarks/input_pipeline.py``).

Usage (from the repository root)::

    python benchmarks/train_step.py                      # all four models, batch 128
    python benchmarks/train_step.py --models vae_mlp --steps 50 --warmup 5 --repeats 1
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402
from experiments import common  # noqa: E402
from experiments.autoencoders import make_terms, make_train_body  # noqa: E402
from jaxgen.data import pipeline  # noqa: E402
from jaxgen.models.autoencoders import make_autoencoder  # noqa: E402
from jaxgen.training import (  # noqa: E402
    DataParallel,
    TrainState,
    split_named,
    with_step_key,
)

MODELS = ("ae_mlp", "ae_conv", "vae_mlp", "vae_conv")
MIN_TIMED_STEPS = 10  # per repeat, whatever --max_seconds says


def build_step(name: str, batch_size: int, parallel_mode: str | None) -> dict[str, Any]:
    """Build one experiment's compiled train step, its initial state and its inputs.

    Mirrors ``experiments.autoencoders.Experiment.__init__`` and the start of ``fit``.

    Args:
      name: a config module in ``experiments/configs`` (one of :data:`MODELS`).
      batch_size: the global batch size (over all devices and processes).
      parallel_mode: ``"shard_map"`` or ``"pmap"``; None keeps the config's
        ``train.parallel``.

    Returns:
      A dict with the ``config``, ``parallel``, jitted ``step``, replicated device ``state``,
      device ``batch``, ``train_key`` and the parameter count ``num_params``.
    """
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    parallel = DataParallel(parallel_mode or config.train.parallel)
    model = make_autoencoder(
        architecture=config.model.architecture,
        image_shape=tuple(config.data.image_shape),
        latent_dim=config.model.latent_dim,
        variational=config.model.variational,
        hidden=tuple(config.model.hidden),
        channels=tuple(config.model.channels),
        init=config.model.init,
    )
    keys = split_named(jax.random.key(config.seed), ("init", "train", "eval", "iwae", "images"))
    x0 = jnp.zeros((1, *config.data.image_shape), jnp.float32)
    init_args = (x0, keys["init"]) if config.model.variational else (x0,)
    params = jax.jit(model.init)(keys["init"], *init_args)["params"]
    state = TrainState.create(
        apply_fn=model.apply, params=params, tx=common.make_optimizer(config.optimizer)
    )
    step = parallel.compile(with_step_key(make_train_body(make_terms(model, config))))

    if batch_size % jax.process_count():
        raise ValueError(f"--batch_size {batch_size} is not divisible by the process count.")
    local = batch_size // jax.process_count()
    if local % parallel.num_local_devices:
        raise ValueError(
            f"--batch_size {batch_size} gives {local} examples per process, not divisible by "
            f"its {parallel.num_local_devices} devices."
        )
    return {
        "config": config,
        "parallel": parallel,
        "step": step,
        "state": parallel.replicate(state),
        "batch": parallel.shard_batch(synthetic_batch(local, config.data.image_shape)),
        "train_key": keys["train"],
        "num_params": sum(int(np.size(p)) for p in jax.tree.leaves(params)),
    }


def synthetic_batch(batch_size: int, image_shape, seed: int = 0) -> pipeline.Batch:
    """Random uint8 images scaled to [0, 1] by the training preprocessing, with labels."""
    rng = np.random.default_rng(seed)
    raw = {
        "image": rng.integers(0, 256, size=(batch_size, *image_shape), dtype=np.uint8),
        "label": rng.integers(0, 10, size=batch_size).astype(np.int64),
    }
    return pipeline.scale_to_unit(raw)


def cost_flops(compiled) -> float | None:
    """FLOPs of one execution of a compiled computation (per device), from XLA.

    ``Compiled.cost_analysis()`` returns a dict in current JAX and a list with one dict per
    computation in older versions; None when the backend gives no estimate.
    """
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
        out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"] + out["temp_bytes"]
    )
    return out


def benchmark_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Compile and time one model's training step; return its results."""
    peak_before, _ = _common.peak_memory()
    t0 = time.perf_counter()
    built = build_step(name, args.batch_size, args.parallel)
    build_s = time.perf_counter() - t0
    step, state, batch, key = built["step"], built["state"], built["batch"], built["train_key"]

    t0 = time.perf_counter()
    lowered = step.lower(state, batch, key)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    flops_per_device = cost_flops(compiled)
    num_devices = built["parallel"].num_devices

    # The jitted step reuses the trace and executable above (it never retraces: parallel.compile
    # allows one trace). The first call still pays one-off runtime setup.
    t0 = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))
    first_call_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))
    warmup_step_s = (time.perf_counter() - t0) / args.warmup if args.warmup else first_call_s

    # Slow steps (conv models on a small CPU) get fewer timed steps, within --max_seconds.
    steps = args.steps
    if args.max_seconds > 0:
        affordable = int(args.max_seconds / (args.repeats * max(warmup_step_s, 1e-9)))
        steps = max(min(args.steps, affordable), min(args.steps, MIN_TIMED_STEPS))
    step_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, batch, key)
        jax.block_until_ready((state, metrics))
        step_times.append((time.perf_counter() - t0) / steps)
    step_s = _common.summarize(step_times)
    peak_after, peak_source = _common.peak_memory()
    final = {k: float(v) for k, v in built["parallel"].fetch(metrics).items()}
    if not all(math.isfinite(v) for v in final.values()):
        raise FloatingPointError(f"{name}: non-finite training metrics {final}")

    flops_per_step = None if flops_per_device is None else flops_per_device * num_devices
    config = built["config"]
    return {
        "model": name,
        "variational": bool(config.model.variational),
        "architecture": config.model.architecture,
        "reconstruction": config.loss.reconstruction,
        "parallel": built["parallel"].mode,
        "num_params": built["num_params"],
        "global_batch_size": args.batch_size,
        "timed_steps_per_repeat": steps,
        "repeats": args.repeats,
        "build_s": build_s,
        "lower_s": lower_s,
        "compile_s": compile_s,
        "first_call_s": first_call_s,
        "first_call_minus_step_s": first_call_s - step_s["median"],
        "step_time_s": step_s,
        "step_time_s_per_repeat": step_times,
        "images_per_s": args.batch_size / step_s["median"],
        "steps_per_s": 1.0 / step_s["median"],
        "flops_per_step": flops_per_step,
        "flops_per_step_per_device": flops_per_device,
        "gflops_per_s": None if flops_per_step is None else flops_per_step / step_s["median"] / 1e9,
        "peak_memory_bytes": peak_after,
        "peak_memory_bytes_before_model": peak_before,
        "peak_memory_source": peak_source,
        "xla_memory_analysis_per_device": memory_analysis(compiled),
        "final_train_metrics": final,
    }


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.1f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the per-model results as a table."""
    header = (
        f"{'model':<9} {'params':>8} {'lower s':>8} {'compile s':>9} {'ms/step':>8} "
        f"{'images/s':>9} {'GFLOP/step':>10} {'GFLOP/s':>8} {'XLA MiB':>8} {'peak MiB':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        gflop = "n/a" if r["flops_per_step"] is None else f"{r['flops_per_step'] / 1e9:.3f}"
        rate = "n/a" if r["gflops_per_s"] is None else f"{r['gflops_per_s']:.1f}"
        xla = r["xla_memory_analysis_per_device"]
        print(
            f"{r['model']:<9} {r['num_params']:>8} {r['lower_s']:>8.2f} {r['compile_s']:>9.2f} "
            f"{1e3 * r['step_time_s']['median']:>8.2f} {r['images_per_s']:>9.0f} {gflop:>10} "
            f"{rate:>8} {_mib(xla and xla['total_bytes']):>8} "
            f"{_mib(r['peak_memory_bytes']):>9}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=128, help="global batch size")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps after compiling")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows; median reported")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        default=list(MODELS),
        metavar="MODEL",
        help=f"subset of {', '.join(MODELS)}",
    )
    parser.add_argument(
        "--max_seconds",
        type=float,
        default=20.0,
        help="per-model budget for the timed steps: fewer than --steps (at "
        f"least {MIN_TIMED_STEPS}) when the step is slow; 0: no limit",
    )
    parser.add_argument(
        "--parallel",
        choices=("shard_map", "pmap"),
        default=None,
        help="override the configs' train.parallel",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="JSON path (default: benchmarks/results/train_step_<backend>_<time>.json)",
    )
    args = parser.parse_args(argv)
    _common.check_timing_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    machine = _common.machine_info()
    print(_common.describe_machine(machine))
    print(
        f"batch {args.batch_size}, {args.warmup} warmup + {args.repeats} x {args.steps} timed "
        f"steps per model (fewer if over {args.max_seconds:g} s)"
    )
    rows = []
    for name in args.models:
        rows.append(benchmark_model(name, args))
        r = rows[-1]
        print(
            f"  {name}: {r['images_per_s']:.0f} images/s over {r['repeats']} x "
            f"{r['timed_steps_per_repeat']} steps, compile {r['compile_s']:.2f} s"
        )
    print()
    print_table(rows)
    peak_source = rows[-1]["peak_memory_source"]
    print(
        f"peak MiB: {peak_source}, process-wide so far (cumulative over the models above); "
        "XLA MiB: the step's own arguments + outputs + temporaries per device."
    )
    results = {
        "benchmark": "train_step",
        "timestamp": _common.now_iso(),
        "machine": machine,
        "settings": {
            "batch_size": args.batch_size,
            "steps": args.steps,
            "max_seconds": args.max_seconds,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "parallel": args.parallel,
            "data": "synthetic uint8 noise -> pipeline.scale_to_unit, one batch kept on device",
            "peak_memory_scope": "process-wide peak after each model, cumulative in run order",
        },
        "results": rows,
    }
    path = _common.write_json(results, args.output, "train_step")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
