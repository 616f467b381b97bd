"""Where a compiled training step spends its time: a per-op breakdown from a profiler trace.

Builds one model's step exactly as ``generative_steps.py`` does (the experiment's own
``Experiment``, a synthetic batch on the devices), traces ``--steps`` steps with
``jax.profiler.trace``, reads the trace back with ``jax.profiler.ProfileData`` and attributes
every op execution that carries an ``hlo_op`` (GPU kernels on the device planes; on a CPU the
XLA thunks of the host plane) to the instruction of the compiled HLO module that launched it.
Instructions are grouped by what they are:

* ``convolution`` — cuDNN convolution custom calls (forward, data and filter gradients),
* ``matmul`` — cuBLAS/cuBLASLt GEMM custom calls, Triton GEMM fusions and ``dot`` ops,
* ``reduction fusion`` — fusions rooted in a reduction (norm statistics, loss, grad norms),
* ``elementwise fusion`` — loop fusions (activations, normalisation, optimizer updates),
* ``copy/transpose``, ``collective``, ``rng`` and ``other``.

It prints the step's wall time, the device's busy time (union of op intervals: the rest is
launch gaps and host work), kernel launches per step, the time per group and per phase
(forward, backward, rest; from the JAX transformation path in each instruction's ``op_name``)
and the slowest instructions, and writes all of it as JSON. The model FLOPs from XLA's cost
analysis are included so that each group's share can be read against the FLOP floor.

On a CPU, read the convolution group with care: XLA's own (Eigen) convolution kernels, which
jaxgen selects there (``jaxgen/training/xla_flags.py``), run in the intra-op thread pool after
their thunk's event has ended, so the trace holds only their dispatch and their work falls in
the untraced time (wall − busy), which the report prints. ``benchmarks/conv_kernels.py`` times
the convolutions themselves.

Usage (from the repository root)::

    python -m benchmarks.profile_step --model ddpm_cifar10 --batch_size 128   # on a GPU
    python -m benchmarks.profile_step --model ddpm_fmnist --batch_size 8 --steps 2   # CPU

The XLA flags of the run (``XLA_FLAGS``) are recorded; compare variants by running the script
once per setting.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
import time
from typing import Any

import jax

from benchmarks import _common
from benchmarks import steps as steps_benchmark
from jaxgen.training import xla_flags

# One HLO instruction: `%name = <shape> opcode(operands), attributes`; the shape may be a tuple.
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>\(.*?\)|\S+)\s+(?P<opcode>[\w\-]+)\(")
_KIND = re.compile(r"kind=(k\w+)")
_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
# A computation's header starts in column 0 (instructions are indented) and opens a brace.
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?(?P<name>[\w.\-]+)\s.*\{\s*$")
# Control flow whose events enclose the events of the ops it runs (on a CPU).
_CONTROL_FLOW = ("while", "conditional", "call")

GROUPS = ("convolution", "matmul", "reduction fusion", "elementwise fusion", "copy/transpose",
          "collective", "rng", "other")
_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all",
                "collective-permute")


def hlo_instructions(hlo_text: str) -> dict[str, dict[str, Any]]:
    """Map each instruction name of an HLO module's text to its opcode, fusion kind, custom-call
    target and, for fusions, the opcodes inside the fused computation."""
    computations: dict[str, list[str]] = collections.defaultdict(list)
    instructions: dict[str, dict[str, Any]] = {}
    current = None
    for line in hlo_text.splitlines():
        head = _COMPUTATION.match(line)
        if head:
            current = head.group("name")
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        info = {"opcode": m.group("opcode"), "computation": current}
        for key, pattern in (("kind", _KIND), ("target", _TARGET), ("calls", _CALLS),
                             ("op_name", _OP_NAME)):
            found = pattern.search(line)
            if found:
                info[key] = found.group(1)
        instructions[m.group("name")] = info
        if current is not None:
            computations[current].append(m.group("opcode"))
    for info in instructions.values():
        if "calls" in info:
            info["fused_opcodes"] = sorted(set(computations.get(info["calls"], ())))
    return instructions


def classify(info: dict[str, Any] | None) -> str:
    """The group (one of `GROUPS`) of an instruction described by `hlo_instructions`."""
    if info is None:
        return "other"
    opcode, target = info["opcode"], info.get("target", "").lower()
    inner = info.get("fused_opcodes", [])
    if "conv" in target or opcode == "convolution" or "convolution" in inner:
        return "convolution"
    if any(s in target for s in ("gemm", "matmul", "cublas")) or opcode == "dot" or (
            "dot" in inner):
        return "matmul"
    if opcode in _COLLECTIVES or opcode.removesuffix("-start") in _COLLECTIVES:
        return "collective"
    if opcode in ("rng", "rng-bit-generator") or "rng-bit-generator" in inner or (
            "threefry" in target):
        return "rng"
    if opcode in ("copy", "transpose") or (opcode == "fusion" and inner and set(inner) <= {
            "parameter", "copy", "transpose", "bitcast", "reshape", "slice", "concatenate",
            "dynamic-slice", "dynamic-update-slice", "pad", "broadcast", "tuple",
            "get-tuple-element"}):
        return "copy/transpose"
    if opcode == "reduce" or "reduce" in inner or info.get("kind") == "kInput":
        return "reduction fusion"
    if opcode == "fusion":
        return "elementwise fusion"
    return "other"


def phase(info: dict[str, Any] | None) -> str:
    """Which part of a training step an instruction belongs to, from the JAX transformation
    path in its ``op_name``: ``backward`` (a transposed JVP), ``forward`` (a JVP: the model and
    the loss) or ``rest``: the optimizer, EMA, keys and metrics, and also the sums of gradient
    contributions, which JAX emits outside the transpose's name scope."""
    op_name = (info or {}).get("op_name", "")
    if "transpose(" in op_name:
        return "backward"
    if "jvp(" in op_name:
        return "forward"
    return "rest"


def op_events(profile: jax.profiler.ProfileData) -> tuple[str, list[tuple[str, int, int]]]:
    """``(source, [(hlo_op, start_ns, duration_ns)])`` of every event carrying an ``hlo_op``:
    from the device planes when any has such events (GPU kernels; only the ``Stream`` lines
    where a plane has them, so that lines derived from them are not counted twice), else from
    the host plane (a CPU run's XLA thunks)."""
    device, host = [], []
    for plane in profile.planes:
        lines = list(plane.lines)
        target = host
        if plane.name.startswith("/device:"):
            target = device
            streams = [line for line in lines if line.name.startswith("Stream")]
            lines = streams or lines
        for line in lines:
            for event in line.events:
                op = dict(event.stats).get("hlo_op")
                if op:
                    target.append((str(op), int(event.start_ns), int(event.duration_ns)))
    return ("device", device) if device else ("host", host)


def describe_planes(profile: jax.profiler.ProfileData) -> str:
    """The trace's planes and their lines, for an error message."""
    return "; ".join(f"{p.name}: {[line.name for line in p.lines]}" for p in profile.planes)


def busy_ns(events: list[tuple[str, int, int]]) -> int:
    """Length of the union of the events' time intervals (concurrent streams overlap)."""
    total, end = 0, None
    for _, start, duration in sorted(events, key=lambda e: e[1]):
        stop = start + duration
        if end is None or start >= end:
            total += duration
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def breakdown(events: list[tuple[str, int, int]], instructions: dict[str, dict[str, Any]],
              num_steps: int, top: int) -> dict[str, Any]:
    """Per-step time by group and the `top` slowest instructions, from the traced `events`.

    Events of control-flow instructions (``while``, ``conditional``, ``call``) are left out:
    on a CPU they enclose the events of the ops they run, which are counted themselves.
    """
    is_control = lambda op: instructions.get(op, {}).get("opcode") in _CONTROL_FLOW
    excluded = sorted({op for op, _, _ in events if is_control(op)})
    events = [e for e in events if not is_control(e[0])]
    per_op: dict[str, list[int]] = collections.defaultdict(list)
    for op, _, duration in events:
        per_op[op].append(duration)
    groups = {g: {"ms_per_step": 0.0, "launches_per_step": 0.0} for g in GROUPS}
    phases = {p: {"ms_per_step": 0.0, "launches_per_step": 0.0}
              for p in ("forward", "backward", "rest")}
    ops = []
    for op, durations in per_op.items():
        info = instructions.get(op)
        group = classify(info)
        ms = sum(durations) / 1e6 / num_steps
        groups[group]["ms_per_step"] += ms
        groups[group]["launches_per_step"] += len(durations) / num_steps
        phases[phase(info)]["ms_per_step"] += ms
        phases[phase(info)]["launches_per_step"] += len(durations) / num_steps
        ops.append({"hlo_op": op, "group": group, "ms_per_step": ms,
                    "launches_per_step": len(durations) / num_steps,
                    "opcode": None if info is None else info["opcode"],
                    "target": None if info is None else info.get("target"),
                    "fused_opcodes": None if info is None else info.get("fused_opcodes")})
    ops.sort(key=lambda o: -o["ms_per_step"])
    summed = sum(g["ms_per_step"] for g in groups.values())
    for g in groups.values():
        g["share_of_op_time"] = g["ms_per_step"] / summed if summed else 0.0
    return {"groups": groups, "phases": phases, "op_ms_per_step": summed,
            "busy_ms_per_step": busy_ns(events) / 1e6 / num_steps,
            "launches_per_step": len(events) / num_steps,
            "unmatched_ops": sorted({op for op in per_op if op not in instructions})[:20],
            "control_flow_ops_excluded": excluded,
            "top_ops": ops[:top]}


def profile(args: argparse.Namespace) -> dict[str, Any]:
    built = steps_benchmark.build(args.model, args.batch_size,
                                  dict(kv.split("=", 1) for kv in args.set))
    # Run the very executable whose HLO names the traced ops (no second compilation).
    step, state, batch, key = built.compiled, built.state, built.batch, built.key
    for _ in range(args.warmup):
        state, metrics = step(state, batch, key)
    jax.block_until_ready((state, metrics))
    trace_dir = tempfile.mkdtemp(prefix="profile_step_")
    with jax.profiler.trace(trace_dir):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state, metrics = step(state, batch, key)
        jax.block_until_ready((state, metrics))
        wall_s = (time.perf_counter() - t0) / args.steps
    paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"jax.profiler.trace wrote no *.xplane.pb under {trace_dir}.")
    trace = jax.profiler.ProfileData.from_file(paths[0])
    source, events = op_events(trace)
    if not events:
        raise RuntimeError(f"the trace {paths[0]} has no events carrying an hlo_op; its planes "
                           f"and lines are {describe_planes(trace)}.")
    instructions = hlo_instructions(built.compiled.as_text())
    result = breakdown(events, instructions, args.steps, args.top)
    flops = _common.cost_flops(built.lowered)
    built.runner.close()
    return {"model": args.model, "family": built.runner.settings.family,
            "global_batch_size": args.batch_size, "overrides": list(args.set),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "traced_steps": args.steps,
            "compile_s": built.compile_s, "wall_ms_per_step": 1e3 * wall_s,
            "images_per_s": args.batch_size / wall_s, "events_from": source,
            "flops_per_step_per_device": flops, "trace_dir": trace_dir, **result}


def print_report(r: dict[str, Any]) -> None:
    print(f"{r['model']} batch {r['global_batch_size']}: {r['wall_ms_per_step']:.2f} ms/step "
          f"wall, {r['busy_ms_per_step']:.2f} ms busy ({r['events_from']} ops), "
          f"{r['launches_per_step']:.0f} launches/step, {r['images_per_s']:.0f} images/s")
    if r["events_from"] == "host":
        print(f"  untraced: {r['wall_ms_per_step'] - r['busy_ms_per_step']:.2f} ms/step (wall "
              f"- busy). On a CPU, XLA's own convolution kernels run in the thread pool after "
              f"their thunk's event ends, so their work is here, not under 'convolution'; "
              f"time them with benchmarks/conv_kernels.py.")
    print(f"  {'group':<20} {'ms/step':>9} {'share':>7} {'launches':>9}")
    for name, g in sorted(r["groups"].items(), key=lambda kv: -kv[1]["ms_per_step"]):
        if g["launches_per_step"]:
            print(f"  {name:<20} {g['ms_per_step']:>9.3f} {100 * g['share_of_op_time']:>6.1f}% "
                  f"{g['launches_per_step']:>9.0f}")
    print("  " + ", ".join(f"{name} {p['ms_per_step']:.3f} ms ({p['launches_per_step']:.0f} "
                           f"launches)" for name, p in r["phases"].items()))
    print("  slowest instructions:")
    for op in r["top_ops"]:
        what = op["target"] or ",".join(op["fused_opcodes"] or []) or op["opcode"]
        print(f"    {op['ms_per_step']:8.3f} ms  {op['group']:<18} {op['hlo_op']}  [{what}]"[:150])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(steps_benchmark.MODELS), default="ddpm_fmnist")
    parser.add_argument("--batch_size", type=int, default=8, help="global batch size")
    parser.add_argument("--steps", type=int, default=5, help="steps inside the trace")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=25, help="slowest instructions to list")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. model.dropout=0.0")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}.")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first run allocates and loads kernels).")
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    xla_flags.set_cpu_flags()  # as experiments/main.py, before the backend starts
    machine = _common.machine_info()
    print(_common.describe_machine(machine))
    r = profile(args)
    print_report(r)
    results = {"benchmark": "profile_step", "timestamp": _common.now_iso(), "machine": machine,
               "settings": vars(args), "results": [r]}
    path = _common.write_json(results, args.output, "profile_step")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
