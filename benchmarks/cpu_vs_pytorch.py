"""jaxgen's compiled training steps side by side with PyTorch eager peers, on this CPU.

For each model, the jaxgen step is the one ``benchmarks.steps.build`` compiles from the
registered config, exactly as ``experiments.main`` builds it (:func:`jaxgen_step`), and the
PyTorch peer, built from the same config, comes from :mod:`benchmarks.torch_peers` (the same
architecture, parameter count, optimizer and work per step). Both are warmed up, then timed in
alternating windows A B A B … (A = jaxgen, B = PyTorch), each window a whole number of steps
lasting about ``--window_s`` seconds; the jaxgen window dispatches its steps and blocks once at
the end, PyTorch runs eagerly. Each pair gives a ratio jaxgen images/s ÷ PyTorch images/s; the
median over pairs is the result. Alternating keeps slow drifts of a shared machine (other jobs)
from favouring one side; each window also records the process's CPU time and the load average,
so a pair measured under contention can be recognised.

Usage (from the repository root)::

    python -m benchmarks.cpu_vs_pytorch                           # all five, 5 pairs each
    python -m benchmarks.cpu_vs_pytorch --models dcgan_fmnist --pairs 7

Writes ``benchmarks/results/cpu_vs_pytorch_<time>.json`` and a ``.png`` figure beside it.
torch must be installed (it is not a jaxgen dependency; see benchmarks/notes/cpu_speed.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import torch

from benchmarks import _common
from benchmarks import steps as steps_benchmark
from benchmarks.torch_peers import Peer, cyclegan, dcgan, num_params, unet, vae
from jaxgen.training import TrainState, xla_flags

# A runner does `steps` training steps and returns once they are finished.
Runner = Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Model:
    batch_size: int
    floor: float  # the goal for jaxgen ÷ PyTorch images/s


# Names in benchmarks.steps.MODELS (registered configs, with that module's overrides).
MODELS = {
    "dcgan_fmnist": Model(64, 1.0),
    "cyclegan_fmnist": Model(8, 1.0),
    "ddpm_fmnist": Model(32, 1.0),
    "vae_conv": Model(128, 1.0),
    "vae_mlp": Model(128, 1.5),
}


def load_config(name: str, batch_size: int):
    """The experiment config ``benchmarks.steps.build`` builds `name`'s jaxgen step from."""
    return steps_benchmark.config_for(name, batch_size, {})


# ---- jaxgen side -----------------------------------------------------------------------


def _carry(step, state, batch, key) -> Runner:
    holder = {"state": state}

    def run(steps: int) -> None:
        state = holder["state"]
        for _ in range(steps):
            state, metrics = step(state, batch, key)
        jax.block_until_ready((state, metrics))
        holder["state"] = state

    return run


def jaxgen_params(state) -> int:
    """Trainable parameters of every player of a host state (no EMA, no optimizer state)."""
    players = [state] if isinstance(state, TrainState) else [state.generator,
                                                                state.discriminator]
    return sum(int(np.size(p)) for player in players for p in jax.tree.leaves(player.params))


def jaxgen_step(name: str, batch_size: int) -> tuple[Runner, int, steps_benchmark.Built]:
    """`name`'s compiled training step from ``benchmarks.steps.build`` (the registered config,
    built as ``experiments.main`` builds it, on a synthetic batch), its parameter count, and
    the build (whose runner the caller closes)."""
    built = steps_benchmark.build(name, batch_size, {})
    count = jaxgen_params(built.parallel.fetch(built.state))  # before a step donates the state
    return _carry(built.compiled, built.state, built.batch, built.key), count, built


# ---- PyTorch side ----------------------------------------------------------------------


def torch_peer(name: str, batch_size: int, *, reuse_fakes: bool = False) -> Peer:
    config = load_config(name, batch_size)
    if name == "dcgan_fmnist":
        return dcgan.make_peer(config, batch_size, reuse_fakes=reuse_fakes)
    if name == "cyclegan_fmnist":
        return cyclegan.make_peer(config, batch_size)
    if name == "ddpm_fmnist":
        return unet.make_peer(config, batch_size)
    if name == "vae_conv":
        return vae.make_conv_peer(config, batch_size)
    if name == "vae_mlp":
        return vae.make_mlp_peer(config, batch_size)
    raise KeyError(name)


def _torch_runner(peer: Peer) -> Runner:
    def run(steps: int) -> None:
        for _ in range(steps):
            peer.step()

    return run


# ---- timing ----------------------------------------------------------------------------


def _system_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all processes, all cores), /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def others_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes over the next `seconds` (we sleep meanwhile)."""
    busy0, own0 = _system_busy_s(), _own_cpu_s()
    time.sleep(seconds)
    return max(0.0, (_system_busy_s() - busy0) - (_own_cpu_s() - own0)) / seconds


def wait_for_quiet(max_cores: float, max_wait_s: float) -> float:
    """Wait (up to `max_wait_s`) until other processes use at most `max_cores` cores.

    On a shared 2-core machine, a PyTorch step under contention can be many times slower
    (its OpenMP regions wait for descheduled threads) while XLA's work-stealing pool degrades
    gracefully, which would flatter jaxgen; so pairs start on a quiet machine when possible.
    Returns the last measurement.
    """
    deadline = time.monotonic() + max_wait_s
    busy = others_cores()
    while busy > max_cores and time.monotonic() < deadline:
        time.sleep(4.0)
        busy = others_cores()
    return busy


def timed_window(run: Runner, steps: int, batch_size: int) -> dict[str, Any]:
    """One timed window of `steps` steps: images/s, the CPU the process got, and the CPU
    other processes took meanwhile (contention)."""
    busy0, cpu0, t0 = _system_busy_s(), _own_cpu_s(), time.perf_counter()
    run(steps)
    wall = time.perf_counter() - t0
    cpu = _own_cpu_s() - cpu0
    others = max(0.0, _system_busy_s() - busy0 - cpu)
    return {"steps": steps, "wall_s": wall, "images_per_s": steps * batch_size / wall,
            "cpu_s": cpu, "cores_used": cpu / wall, "others_cores": others / wall,
            "load_1m": os.getloadavg()[0]}


def steps_for(run: Runner, window_s: float, probe_steps: int = 1) -> int:
    """Steps filling about `window_s` seconds, from the time of a few untimed steps."""
    t0 = time.perf_counter()
    run(probe_steps)
    per_step = (time.perf_counter() - t0) / probe_steps
    return max(2, round(window_s / max(per_step, 1e-6)))


def compare(name: str, a: Runner, b: Runner, batch_size: int, args: argparse.Namespace,
            labels=("jaxgen", "pytorch")) -> dict[str, Any]:
    """Warm both up, then alternate timed windows A B A B … for ``args.pairs`` pairs."""
    for run in (a, b):
        run(args.warmup)
    steps = {labels[0]: steps_for(a, args.window_s), labels[1]: steps_for(b, args.window_s)}
    pairs = []
    for i in range(args.pairs):
        before = wait_for_quiet(args.quiet_cores, args.max_wait_s)
        wa = timed_window(a, steps[labels[0]], batch_size)
        wb = timed_window(b, steps[labels[1]], batch_size)
        ratio = wa["images_per_s"] / wb["images_per_s"]
        contended = max(wa["others_cores"], wb["others_cores"]) > args.quiet_cores
        pairs.append({labels[0]: wa, labels[1]: wb, "ratio": ratio,
                      "others_cores_before": before, "contended": contended})
        print(f"  pair {i + 1}: {labels[0]} {wa['images_per_s']:9.1f} img/s  {labels[1]} "
              f"{wb['images_per_s']:9.1f} img/s  ratio {ratio:.3f}  (others used "
              f"{wa['others_cores']:.2f}/{wb['others_cores']:.2f} cores"
              f"{', CONTENDED' if contended else ''})", flush=True)
    ratios = [p["ratio"] for p in pairs]
    return {"model": name, "batch_size": batch_size, "steps_per_window": steps,
            "pairs": pairs, "ratios": ratios, "median_ratio": statistics.median(ratios),
            "contended_pairs": sum(p["contended"] for p in pairs)}


def machine() -> dict[str, Any]:
    info = _common.machine_info()
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), None)
    except OSError:
        pass
    info.update({
        "cpu_model": model or info["processor"],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "jax_cpu_threads": "XLA default: one per usable core (intra-op Eigen pool)",
        "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "OMP_NUM_THREADS",
                                               "MKL_NUM_THREADS", "KMP_BLOCKTIME")},
    })
    return info


def draw_figure(rows: list[dict[str, Any]], path: str) -> None:
    """Per model: each pair's ratio (dots), the median (bar) and the goal (line); PNG."""
    from PIL import Image, ImageDraw

    width, height, left, bottom, top = 160 * len(rows) + 120, 420, 70, 60, 30
    values = [r for row in rows for r in row["ratios"]] + [row["floor"] for row in rows]
    y_max = max(2.0, 1.15 * max(values))
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def y(v: float) -> float:
        return height - bottom - (height - bottom - top) * v / y_max

    for tick in np.arange(0.0, y_max + 1e-9, 0.5):
        draw.line([(left, y(tick)), (width - 20, y(tick))], fill=(225, 225, 225))
        draw.text((10, y(tick) - 6), f"{tick:.1f}x", fill="black")
    draw.line([(left, y(1.0)), (width - 20, y(1.0))], fill=(120, 120, 120), width=2)
    for i, row in enumerate(rows):
        x0 = left + 20 + 160 * i
        median = row["median_ratio"]
        color = (70, 130, 180) if median >= row["floor"] else (205, 92, 92)
        draw.rectangle([(x0, y(median)), (x0 + 100, y(0))], fill=color)
        draw.line([(x0 - 8, y(row["floor"])), (x0 + 108, y(row["floor"]))], fill="black",
                  width=2)
        for j, r in enumerate(row["ratios"]):
            cx = x0 + 15 + 70 * j / max(1, len(row["ratios"]) - 1)
            draw.ellipse([(cx - 4, y(r) - 4), (cx + 4, y(r) + 4)], fill="black")
        draw.text((x0, height - bottom + 8), row["model"], fill="black")
        draw.text((x0, height - bottom + 24), f"median {median:.2f}x", fill="black")
    draw.text((left, 8), "jaxgen / PyTorch eager images/s per pair (dots), median (bar), "
              "goal (line)", fill="black")
    img.save(path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--pairs", type=int, default=5, help="A B pairs per model (>= 3)")
    parser.add_argument("--window_s", type=float, default=4.0, help="seconds per window")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side")
    parser.add_argument("--quiet_cores", type=float, default=0.25,
                        help="start a pair only when other processes use at most this many "
                             "cores (a pair measured above it is marked contended)")
    parser.add_argument("--max_wait_s", type=float, default=300.0,
                        help="longest wait for a quiet machine before each pair")
    parser.add_argument("--output", default=None, help="JSON path (PNG beside it)")
    args = parser.parse_args(argv)
    if args.pairs < 3:
        parser.error("--pairs must be at least 3")
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    xla_flags.set_cpu_flags()  # as experiments/main.py, before the backend starts
    info = machine()
    print(f"{info['cpu_model']}: {info['usable_cpus']}/{info['cpu_count']} CPUs; jax "
          f"{info['jax']} ({info['jax_cpu_threads']}; XLA_FLAGS={info['xla_flags']!r}); torch "
          f"{info['torch']} ({info['torch_threads']} threads, {info['torch_interop_threads']} "
          f"inter-op); load {info['load_average_1_5_15m']}")
    rows = []
    for name in args.models:
        spec = MODELS[name]
        jax_run, jax_params, built = jaxgen_step(name, spec.batch_size)
        peer = torch_peer(name, spec.batch_size)
        torch_params = sum(num_params(m) for m in peer.models.values())
        print(f"{name} batch {spec.batch_size} (parameters: jaxgen {jax_params:,}, "
              f"PyTorch {torch_params:,})", flush=True)
        row = compare(name, jax_run, _torch_runner(peer), spec.batch_size, args)
        built.runner.close()
        row.update(floor=spec.floor, jaxgen_params=jax_params, torch_params=torch_params)
        print(f"  median ratio {row['median_ratio']:.3f} (goal >= {spec.floor})", flush=True)
        rows.append(row)

    print("\nmodel              pairs (jaxgen/PyTorch)                      median  goal")
    for row in rows:
        pairs = " ".join(f"{r:.2f}" for r in row["ratios"])
        flag = f"  ({row['contended_pairs']} contended)" if row["contended_pairs"] else ""
        print(f"{row['model']:<18} {pairs:<42} {row['median_ratio']:6.2f}  {row['floor']:.1f}"
              f"{flag}")
    results = {"benchmark": "cpu_vs_pytorch", "timestamp": _common.now_iso(), "machine": info,
               "settings": vars(args), "results": rows}
    path = _common.write_json(results, args.output, "cpu_vs_pytorch")
    png = os.path.splitext(path)[0] + ".png"
    draw_figure(rows, png)
    print(f"wrote {path} and {png}")
    return results


if __name__ == "__main__":
    main()
