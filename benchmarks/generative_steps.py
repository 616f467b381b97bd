"""Training-step and sampling benchmark for diffusion (UNet), DCGAN and CycleGAN.

Each model's compiled step is built exactly as its experiment builds it (the experiment's
``Experiment`` class: config, model, initial state, optimizer, step body and
``DataParallel.compile``), then timed on one synthetic batch kept on the devices:

* ``lower_s`` / ``compile_s``: tracing + lowering and XLA compilation, timed separately;
* steady-state throughput in images/s (median of ``--repeats`` windows of ``--steps`` steps,
  synchronised with ``jax.block_until_ready``);
* FLOPs per step from XLA's cost analysis of the lowered step (the HLO before backend
  optimisation: on GPUs the compiled module's analysis misses the convolutions, which become
  cuDNN custom calls), the achieved TFLOP/s, and the model FLOPs utilisation (MFU) against the
  device's dense bf16 peak where it is known (``--peak_tflops`` sets it);
* for diffusion, the sampling time per image of DDIM (``sampling.ddim_steps``) and ancestral
  DDPM (all T steps), compiled separately and timed on one batch of ``--sample_batch`` images.

Usage (from the repository root)::

    python benchmarks/generative_steps.py                      # every model, CPU-sized
    python benchmarks/generative_steps.py --models ddpm_cifar10 --sample  # on a GPU
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import math
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _common  # noqa: E402
from benchmarks.train_step import cost_flops, memory_analysis  # noqa: E402
from experiments import common  # noqa: E402

# name -> (config module, experiment module, global batch sizes, config overrides)
MODELS = {
    "ddpm_fmnist": ("ddpm_fmnist", "diffusion", (64,), {}),
    "ddpm_cifar10": ("ddpm_cifar10", "diffusion", (128,), {}),
    "ddpm_cifar10_fp32": ("ddpm_cifar10", "diffusion", (128,), {"model.dtype": "float32"}),
    "dcgan_fmnist": ("dcgan_fmnist", "gan", (64, 128), {}),
    "dcgan_64": ("dcgan_fmnist", "gan", (64, 128),  # the paper's 64×64 RGB model
                 {"data.image_size": 64, "data.image_shape": (64, 64, 3),
                  "model.generator_features": 64, "model.discriminator_features": 64}),
    "cyclegan_fmnist": ("cyclegan_fmnist", "cyclegan", (8,), {}),
    "cyclegan_256": ("cyclegan_monet", "cyclegan", (1, 4), {}),
}
# Dense bf16 peak of known accelerators, FLOP/s (vendor data sheets, without sparsity).
PEAK_BF16 = {"NVIDIA H100 80GB HBM3": 989.4e12, "NVIDIA H200": 989.4e12}


def load_config(module: str, overrides: dict[str, Any], batch_size: int):
    """The config `module` with `overrides` (``--set`` strings are parsed as Python literals
    when the setting is not a string)."""
    config = importlib.import_module(f"experiments.configs.{module}").get_config()
    for dotted, value in {**overrides, "train.batch_size": batch_size}.items():
        node = config
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        if isinstance(value, str) and not isinstance(node[leaf], str):
            value = type(node[leaf])(ast.literal_eval(value))
        node[leaf] = value
    return config


def synthetic_batch(experiment: str, config, local: int) -> dict[str, np.ndarray]:
    """A batch in the layout the experiment's loader produces (float32 in [−1, 1])."""
    rng = np.random.default_rng(0)
    if experiment == "cyclegan":
        size, c = config.data.crop_size, config.data.channels
        return {d: rng.uniform(-1, 1, (local, size, size, c)).astype(np.float32) for d in "xy"}
    size, c = config.data.image_size, config.data.image_shape[-1]
    return {"image": rng.uniform(-1, 1, (local, size, size, c)).astype(np.float32)}


def time_calls(fn, args, *, warmup: int, steps: int, repeats: int, carry_state: bool):
    """Median seconds per call over `repeats` windows of `steps` calls."""
    out = None
    state = args[0]
    for _ in range(warmup):
        out = fn(state, *args[1:])
        state = out[0] if carry_state else state
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(state, *args[1:])
            state = out[0] if carry_state else state
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / steps)
    return times, out


@dataclasses.dataclass
class Built:
    """A model's experiment, replicated state, synthetic device batch and compiled step."""

    config: Any
    module: str
    experiment: str
    overrides: dict[str, Any]
    exp: Any
    run: Any
    state: Any
    batch: Any
    key: jax.Array
    lowered: Any
    compiled: Any
    build_s: float
    lower_s: float
    compile_s: float


def build(name: str, batch_size: int, settings: list[str]) -> Built:
    """Build `name`'s training step exactly as its experiment does, at `batch_size`, with the
    ``KEY=VALUE`` config overrides in `settings`; lower and compile it, timing each stage."""
    module, experiment, _, overrides = MODELS[name]
    overrides = {**overrides, **dict(kv.split("=", 1) for kv in settings)}
    config = load_config(module, overrides, batch_size)
    exp_module = importlib.import_module(f"experiments.{experiment}")
    workdir = tempfile.mkdtemp(prefix=f"bench_{name}_")
    run = common.make_run(config, workdir)
    t0 = time.perf_counter()
    exp = exp_module.Experiment(config, run, num_steps=1000)
    build_s = time.perf_counter() - t0
    local = batch_size // jax.process_count()
    batch = run.parallel.shard_batch(synthetic_batch(experiment, config, local))
    state = run.parallel.replicate(exp.initial_state)
    key = exp.train_key

    t0 = time.perf_counter()
    lowered = exp.train_step.lower(state, batch, key)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    return Built(config, module, experiment, overrides, exp, run, state, batch, key, lowered,
                 compiled, build_s, lower_s, compile_s)


def benchmark(name: str, batch_size: int, args: argparse.Namespace) -> dict[str, Any]:
    b = build(name, batch_size, args.set)
    exp, parallel, state, batch, key = b.exp, b.run.parallel, b.state, b.batch, b.key
    flops_device = cost_flops(b.lowered)
    t0 = time.perf_counter()
    state, metrics = exp.train_step(state, batch, key)
    jax.block_until_ready((state, metrics))
    first_call_s = time.perf_counter() - t0

    probe, (state, metrics) = time_calls(exp.train_step, (state, batch, key), warmup=0, steps=1,
                                         repeats=1, carry_state=True)
    steps = args.steps
    if args.max_seconds > 0:
        steps = max(3, min(steps, int(args.max_seconds / (args.repeats * probe[0]))))
    times, (state, metrics) = time_calls(exp.train_step, (state, batch, key),
                                         warmup=args.warmup, steps=steps, repeats=args.repeats,
                                         carry_state=True)
    final = {k: float(v) for k, v in parallel.fetch(metrics).items()}
    if not all(math.isfinite(v) for v in final.values()):
        raise FloatingPointError(f"{name}: non-finite training metrics {final}")
    step_s = _common.summarize(times)
    flops = None if flops_device is None else flops_device * parallel.num_devices
    achieved = None if flops is None else flops / step_s["median"]
    peak = args.peak_tflops * 1e12 if args.peak_tflops else PEAK_BF16.get(
        jax.devices()[0].device_kind)
    params = exp.initial_state.params if hasattr(exp.initial_state, "params") else {
        "generator": exp.initial_state.generator.params,
        "discriminator": exp.initial_state.discriminator.params}
    row = {
        "model": name,
        "config": b.module,
        "overrides": {k: str(v) for k, v in b.overrides.items()},
        "dtype": b.config.model.get("dtype", "float32"),
        "num_params": sum(int(np.size(p)) for p in jax.tree.leaves(params)),
        "global_batch_size": batch_size,
        "parallel": parallel.mode,
        "num_devices": parallel.num_devices,
        "timed_steps_per_repeat": steps,
        "repeats": args.repeats,
        "build_s": b.build_s,
        "lower_s": b.lower_s,
        "compile_s": b.compile_s,
        "first_call_s": first_call_s,
        "step_time_s": step_s,
        "images_per_s": batch_size / step_s["median"],
        "flops_per_step": flops,
        "tflops_per_s": None if achieved is None else achieved / 1e12,
        "peak_bf16_flops_per_s": peak,
        "mfu_vs_bf16_peak": None if (achieved is None or not peak) else achieved / peak,
        "peak_memory_bytes": _common.peak_memory()[0],
        "peak_memory_source": _common.peak_memory()[1],
        "xla_memory_analysis_per_device": memory_analysis(b.compiled),
        "final_train_metrics": final,
    }
    if args.sample and b.experiment == "diffusion":
        row["sampling"] = benchmark_sampling(exp, state, args)
    b.run.close()
    return row


def benchmark_sampling(exp, device_state, args: argparse.Namespace) -> dict[str, Any]:
    """Compile and time DDIM and DDPM on one batch of ``--sample_batch`` images."""
    parallel = exp.run.parallel
    n = args.sample_batch
    x_t = np.asarray(jax.random.normal(jax.random.key(0), (n, *exp.shape)))
    batch = parallel.shard_batch({"x_T": x_t[: n // jax.process_count()]})
    out = {}
    for sampler in ("ddim", "ddpm"):
        fn = exp.sample_steps[sampler]
        t0 = time.perf_counter()
        compiled = fn.lower(device_state, batch, exp.sample_key).compile()
        compile_s = time.perf_counter() - t0
        times, _ = time_calls(compiled, (device_state, batch, exp.sample_key), warmup=1,
                              steps=1, repeats=args.sample_repeats, carry_state=False)
        steps = (exp.config.sampling.ddim_steps if sampler == "ddim"
                 else exp.schedule.num_timesteps)
        median = _common.summarize(times)["median"]
        out[f"{sampler}{steps}"] = {
            "batch": n, "network_evaluations": steps, "compile_s": compile_s,
            "seconds_per_batch": median, "seconds_per_image": median / n,
            "images_per_s": n / median,
        }
    return out


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS),
                        default=["ddpm_fmnist", "dcgan_fmnist", "cyclegan_fmnist"])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=None,
                        help="global batch sizes (default: each model's own list)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_seconds", type=float, default=30.0,
                        help="budget per model for the timed steps (at least 3 per repeat)")
    parser.add_argument("--sample", action="store_true", help="also time DDIM/DDPM sampling")
    parser.add_argument("--sample_batch", type=int, default=16)
    parser.add_argument("--sample_repeats", type=int, default=1)
    parser.add_argument("--peak_tflops", type=float, default=0.0,
                        help="the device's dense bf16 peak (default: known devices only)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every model, e.g. model.dropout=0.0")
    parser.add_argument("--prng_impl", default=None, choices=("threefry2x32", "rbg"),
                        help="jax_default_prng_impl (dropout masks are drawn in the step)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.prng_impl:
        jax.config.update("jax_default_prng_impl", args.prng_impl)
    args.batch_size = 1  # for check_timing_args
    _common.check_timing_args(parser, args)
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    machine = _common.machine_info()
    print(_common.describe_machine(machine))
    rows = []
    for name in args.models:
        for batch_size in args.batch_sizes or MODELS[name][2]:
            r = benchmark(name, batch_size, args)
            rows.append(r)
            mfu = r["mfu_vs_bf16_peak"]
            print(f"  {name} batch {batch_size} ({r['dtype']}, {r['num_params']:,} params): "
                  f"{r['images_per_s']:.1f} images/s, {1e3 * r['step_time_s']['median']:.1f} "
                  f"ms/step, compile {r['compile_s']:.1f} s, "
                  f"{r['tflops_per_s'] or float('nan'):.3f} TFLOP/s"
                  + (f", MFU {100 * mfu:.1f}% of bf16 peak" if mfu else ""))
            for s, v in r.get("sampling", {}).items():
                print(f"    {s}: {v['seconds_per_image'] * 1e3:.2f} ms/image "
                      f"(batch {v['batch']}, compile {v['compile_s']:.1f} s)")
    machine["prng_impl"] = str(jax.config.jax_default_prng_impl)
    results = {"benchmark": "generative_steps", "timestamp": _common.now_iso(),
               "machine": machine, "settings": vars(args), "results": rows}
    path = _common.write_json(results, args.output, "generative_steps")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
