"""The profiler breakdown of benchmarks/profile_step.py: interval union, HLO parsing, grouping."""

import glob
import os

import jax
import jax.numpy as jnp
import pytest

from benchmarks import profile_step


@pytest.mark.parametrize("events, expected", [
    ([("a", 0, 10), ("b", 20, 5)], 15),                 # disjoint
    ([("a", 0, 10), ("b", 5, 10)], 15),                 # overlapping: [0, 15)
    ([("a", 0, 30), ("b", 5, 10), ("c", 40, 1)], 31),   # nested, then disjoint
    ([("b", 5, 10), ("a", 0, 10)], 15),                 # order does not matter
    ([], 0),
])
def test_busy_ns_is_the_length_of_the_union(events, expected):
    assert profile_step.busy_ns(events) == expected


def _conv_and_reduce(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.tanh(y).sum(axis=(1, 2, 3))


def test_profile_attributes_every_traced_op_to_the_compiled_module(tmp_path):
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 8))
    w = jax.random.normal(jax.random.key(1), (3, 3, 8, 8))
    fn = jax.jit(_conv_and_reduce)
    compiled = fn.lower(x, w).compile()
    instructions = profile_step.hlo_instructions(compiled.as_text())
    groups = {profile_step.classify(info) for info in instructions.values()}
    assert "convolution" in groups, instructions

    jax.block_until_ready(fn(x, w))
    with jax.profiler.trace(str(tmp_path)):
        for _ in range(3):
            jax.block_until_ready(fn(x, w))
    path, = glob.glob(os.path.join(tmp_path, "**", "*.xplane.pb"), recursive=True)
    source, events = profile_step.op_events(jax.profiler.ProfileData.from_file(path))
    assert source == "host" and events  # a CPU run: the XLA thunks of the host plane
    ours = [e for e in events if e[0] in instructions]
    assert ours, "no traced op matches an instruction of the compiled module"

    result = profile_step.breakdown(ours, instructions, num_steps=3, top=5)
    assert result["groups"]["convolution"]["launches_per_step"] >= 1
    assert result["op_ms_per_step"] == pytest.approx(
        sum(g["ms_per_step"] for g in result["groups"].values()))
    assert 0 < result["busy_ms_per_step"] <= result["op_ms_per_step"] + 1e-9
    assert result["top_ops"][0]["ms_per_step"] == max(o["ms_per_step"] for o in result["top_ops"])


def test_classify_groups():
    assert profile_step.classify(
        {"opcode": "custom-call", "target": "__cudnn$convBackwardFilter"}) == "convolution"
    assert profile_step.classify({"opcode": "custom-call", "target": "__cublas$lt$matmul"}) == \
        "matmul"
    assert profile_step.classify(
        {"opcode": "fusion", "kind": "kInput", "fused_opcodes": ["multiply", "reduce"]}) == \
        "reduction fusion"
    assert profile_step.classify(
        {"opcode": "fusion", "kind": "kLoop", "fused_opcodes": ["add", "logistic"]}) == \
        "elementwise fusion"
    assert profile_step.classify(
        {"opcode": "fusion", "kind": "kLoop", "fused_opcodes": ["parameter", "transpose"]}) == \
        "copy/transpose"
    assert profile_step.classify({"opcode": "all-reduce-start"}) == "collective"
    assert profile_step.classify(None) == "other"


def test_phase_from_op_name():
    assert profile_step.phase({"op_name": "jit(step)/transpose(jvp(UNet))/conv"}) == "backward"
    assert profile_step.phase({"op_name": "jit(step)/jvp(UNet)/conv"}) == "forward"
    assert profile_step.phase({"op_name": "jit(step)/mul"}) == "rest"
    assert profile_step.phase(None) == "rest"
