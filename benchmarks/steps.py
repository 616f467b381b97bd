"""Every family's compiled training step (and its samplers), timed through the registry.

Each benchmark is an experiment config (``experiments/configs/<name>.py``, plus a few named
variants below) built exactly as ``experiments.main`` builds it: the typed settings, the
family object from ``jaxgen.families``, the runner's initial state, optimizer and
``DataParallel.compile`` of the family's ``train_body``. It is timed on one synthetic batch in
the family's input range, kept on the devices:

* ``lower_s`` / ``compile_s``: tracing + lowering and XLA compilation, timed separately;
* images/s: the median of ``--repeats`` windows of ``--steps`` steps (``block_until_ready``);
* FLOPs per step from XLA's cost analysis of the lowered step (the HLO before backend
  optimisation: on GPUs the compiled module's analysis misses cuDNN convolutions), the
  achieved TFLOP/s, and the share of the device's dense bf16 peak where it is known;
* peak memory and XLA's static memory analysis;
* with ``--sample``, every sampler of a family that generates, on ``--sample_batch`` images.

``--devices 1 N`` runs each benchmark on the first device and on N devices (default: 1 and all).

Usage (from the repository root)::

    python -m benchmarks.steps                                  # the CPU-sized configs
    python -m benchmarks.steps --models ddpm_cifar10 --sample   # on a GPU
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import tempfile
import time
from typing import Any

import jax
import numpy as np

from benchmarks import _common
from experiments import runner, settings
from jaxgen.training import DataParallel, with_step_key, xla_flags

# name -> (config module, default global batch sizes, config overrides)
MODELS = {
    "vae_mlp": ("vae_mlp", (128,), {}),
    "vae_conv": ("vae_conv", (128,), {}),
    "ae_mlp": ("ae_mlp", (128,), {}),
    "ae_conv": ("ae_conv", (128,), {}),
    "ddpm_fmnist": ("ddpm_fmnist", (32,), {}),
    "ddpm_cifar10": ("ddpm_cifar10", (128,), {}),
    "ddpm_cifar10_fp32": ("ddpm_cifar10", (128,), {"model.dtype": "float32"}),
    "dcgan_fmnist": ("dcgan_fmnist", (64,), {}),
    "dcgan_64": ("dcgan_fmnist", (64, 128),  # the paper's 64×64 RGB model
                 {"data.image_size": 64, "data.channels": 3,
                  "model.generator_features": 64, "model.discriminator_features": 64}),
    "cyclegan_fmnist": ("cyclegan_fmnist", (8,), {}),
    "cyclegan_256": ("cyclegan_monet", (1, 4), {}),
}
CPU_DEFAULT = ("vae_mlp", "vae_conv", "ddpm_fmnist", "dcgan_fmnist", "cyclegan_fmnist")
# Dense bf16 peak of known accelerators, FLOP/s (vendor data sheets, without sparsity).
PEAK_BF16 = {"NVIDIA H100 80GB HBM3": 989.4e12, "NVIDIA H200": 989.4e12}


def config_for(name: str, batch_size: int, extra: dict[str, Any]):
    """The benchmark's experiment config at `batch_size` with its and `extra` overrides
    (strings are parsed as Python literals where the setting is not a string)."""
    import importlib

    module, _, overrides = MODELS[name]
    config = importlib.import_module(f"experiments.configs.{module}").get_config()
    for dotted, value in {**overrides, **extra, "train.batch_size": batch_size}.items():
        node = config
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        if isinstance(value, str) and not isinstance(node[leaf], str):
            value = type(node[leaf])(ast.literal_eval(value))
        node[leaf] = value
    return config


def synthetic_batch(family, image_shape, local: int) -> dict[str, np.ndarray]:
    """A batch in the layout and range the family's loader produces."""
    rng = np.random.default_rng(0)
    low = 0.0 if family.input_range == "unit" else -1.0
    names = ("x", "y") if family.data_kind == "unpaired" else ("image",)
    return {n: rng.uniform(low, 1.0, (local, *image_shape)).astype(np.float32) for n in names}


@dataclasses.dataclass
class Built:
    """One benchmark's runner, replicated state, device batch, and lowered/compiled step."""

    name: str
    config: Any
    runner: runner.Runner
    state: Any
    batch: Any
    key: jax.Array
    step: Any
    lowered: Any
    compiled: Any
    lower_s: float
    compile_s: float

    @property
    def parallel(self) -> DataParallel:
        return self.runner.parallel


def build(name: str, batch_size: int, overrides: dict[str, Any] | None = None, *,
          devices=None) -> Built:
    """Build `name`'s training step as ``experiments.main`` does, on `devices` (default all);
    lower and compile it, timing each stage."""
    config = config_for(name, batch_size, overrides or {})
    r = runner.Runner(*settings.from_config_dict(config), tempfile.mkdtemp(prefix=f"{name}_"))
    if devices is not None:
        r.parallel = DataParallel(r.settings.train.parallel, devices=devices)
    state = r.parallel.replicate(r.initial_state(num_steps=1000))
    local = batch_size // jax.process_count()
    batch = r.parallel.shard_batch(synthetic_batch(r.family, r.data.image_shape, local))
    step = r.compiled("train", with_step_key(r.family.train_body), donate=True)
    key = r.keys["train"]
    t0 = time.perf_counter()
    lowered = step.lower(state, batch, key)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    return Built(name, config, r, state, batch, key, step, lowered, compiled, lower_s,
                 time.perf_counter() - t0)


def time_calls(fn, state, *args, warmup: int, steps: int, repeats: int, carry_state: bool):
    """Seconds per call of each of `repeats` windows of `steps` calls, and the last output."""
    out = None
    for _ in range(warmup):
        out = fn(state, *args)
        state = out[0] if carry_state else state
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = fn(state, *args)
            state = out[0] if carry_state else state
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / steps)
    return times, out


def benchmark(name: str, batch_size: int, devices, args) -> dict[str, Any]:
    b = build(name, batch_size, dict(kv.split("=", 1) for kv in args.set), devices=devices)
    flops_device = _common.cost_flops(b.lowered)
    probe, (state, _) = time_calls(b.compiled, b.state, b.batch, b.key, warmup=1, steps=1,
                                   repeats=1, carry_state=True)
    steps = args.steps
    if args.max_seconds > 0:
        steps = max(3, min(steps, int(args.max_seconds / (args.repeats * probe[0]))))
    times, (state, metrics) = time_calls(b.compiled, state, b.batch, b.key, warmup=args.warmup,
                                         steps=steps, repeats=args.repeats, carry_state=True)
    final = {k: float(v) for k, v in b.parallel.fetch(metrics).items()}
    if not all(math.isfinite(v) for v in final.values()):
        raise FloatingPointError(f"{name}: non-finite training metrics {final}")
    step_s = _common.summarize(times)
    flops = None if flops_device is None else flops_device * b.parallel.num_devices
    achieved = None if flops is None else flops / step_s["median"]
    peak = args.peak_tflops * 1e12 if args.peak_tflops else PEAK_BF16.get(
        jax.devices()[0].device_kind)
    host = b.parallel.fetch(state)
    row = {
        "model": name, "family": b.runner.settings.family,
        "overrides": {k: str(v) for k, v in {**MODELS[name][2], **dict(
            kv.split("=", 1) for kv in args.set)}.items()},
        "num_params": sum(int(np.size(p)) for path, p in jax.tree_util.tree_leaves_with_path(
            host) if "params" in jax.tree_util.keystr(path) and "ema" not in
            jax.tree_util.keystr(path) and "opt_state" not in jax.tree_util.keystr(path)),
        "global_batch_size": batch_size, "num_devices": b.parallel.num_devices,
        "timed_steps_per_repeat": steps, "repeats": args.repeats,
        "lower_s": b.lower_s, "compile_s": b.compile_s, "step_time_s": step_s,
        "images_per_s": batch_size / step_s["median"], "flops_per_step": flops,
        "tflops_per_s": None if achieved is None else achieved / 1e12,
        "peak_bf16_flops_per_s": peak,
        "mfu_vs_bf16_peak": None if (achieved is None or not peak) else achieved / peak,
        "peak_memory_bytes": _common.peak_memory()[0],
        "peak_memory_source": _common.peak_memory()[1],
        "xla_memory_analysis_per_device": _common.memory_analysis(b.compiled),
        "final_train_metrics": final,
    }
    if args.sample:
        row["sampling"] = benchmark_sampling(b, state, args)
    b.runner.close()
    return row


def benchmark_sampling(b: Built, device_state, args) -> dict[str, Any]:
    """Compile and time every sampler of the family on ``--sample_batch`` images."""
    family, n = b.runner.family, args.sample_batch
    inputs = jax.tree.map(np.asarray, family.sample_inputs(jax.random.key(0), n))
    local = n // jax.process_count()
    batch = b.parallel.shard_batch({k: v[:local] for k, v in inputs.items()})
    out = {}
    for sampler in family.samplers:
        fn = b.runner.compiled(f"sample_{sampler}", family.sample_body(sampler), per_example=True)
        t0 = time.perf_counter()
        compiled = fn.lower(device_state, batch, b.key).compile()
        compile_s = time.perf_counter() - t0
        times, _ = time_calls(compiled, device_state, batch, b.key, warmup=1, steps=1,
                              repeats=args.sample_repeats, carry_state=False)
        median = _common.summarize(times)["median"]
        out[sampler] = {"batch": n, "compile_s": compile_s, "seconds_per_batch": median,
                        "seconds_per_image": median / n, "images_per_s": n / median}
    return out


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(CPU_DEFAULT))
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=None,
                        help="global batch sizes (default: each model's own list)")
    parser.add_argument("--devices", type=int, nargs="+", default=None,
                        help="device counts to run on (default: 1 and all, once if equal)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_seconds", type=float, default=30.0,
                        help="budget per model for the timed steps (at least 3 per repeat)")
    parser.add_argument("--sample", action="store_true", help="also time the samplers")
    parser.add_argument("--sample_batch", type=int, default=16)
    parser.add_argument("--sample_repeats", type=int, default=1)
    parser.add_argument("--peak_tflops", type=float, default=0.0,
                        help="the device's dense bf16 peak (default: known devices only)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every model, e.g. model.dropout=0.0")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    args.batch_size = 1  # for check_timing_args
    _common.check_timing_args(parser, args)
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    xla_flags.set_cpu_flags()  # as experiments/main.py, before the backend starts
    machine = _common.machine_info()
    print(_common.describe_machine(machine))
    counts = args.devices or sorted({1, jax.device_count()})
    rows = []
    for name in args.models:
        for batch_size in args.batch_sizes or MODELS[name][1]:
            for count in counts:
                r = benchmark(name, batch_size, jax.devices()[:count], args)
                rows.append(r)
                mfu = r["mfu_vs_bf16_peak"]
                print(f"  {name} batch {batch_size} on {count} device(s) "
                      f"({r['num_params']:,} params): {r['images_per_s']:.1f} images/s, "
                      f"{1e3 * r['step_time_s']['median']:.1f} ms/step, compile "
                      f"{r['compile_s']:.1f} s, {r['tflops_per_s'] or float('nan'):.3f} TFLOP/s"
                      + (f", MFU {100 * mfu:.1f}% of bf16 peak" if mfu else ""))
                for s, v in r.get("sampling", {}).items():
                    print(f"    {s}: {v['seconds_per_image'] * 1e3:.2f} ms/image "
                          f"(batch {v['batch']}, compile {v['compile_s']:.1f} s)")
    results = {"benchmark": "steps", "timestamp": _common.now_iso(), "machine": machine,
               "settings": vars(args), "results": rows}
    path = _common.write_json(results, args.output, "steps")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
