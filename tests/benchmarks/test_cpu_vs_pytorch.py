"""benchmarks/cpu_vs_pytorch.py builds the jaxgen side through benchmarks.steps and times it."""

import argparse

import pytest

pytest.importorskip("torch")

from benchmarks import cpu_vs_pytorch  # noqa: E402
from benchmarks.torch_peers import num_params  # noqa: E402


def test_one_tiny_pair_of_the_mlp_vae():
    batch = 8
    run, jax_params, built = cpu_vs_pytorch.jaxgen_step("vae_mlp", batch)
    peer = cpu_vs_pytorch.torch_peer("vae_mlp", batch)
    assert jax_params == sum(num_params(m) for m in peer.models.values()) == 652_824
    args = argparse.Namespace(pairs=1, window_s=0.01, warmup=1, quiet_cores=1e9,
                              max_wait_s=0.0)
    row = cpu_vs_pytorch.compare("vae_mlp", run, cpu_vs_pytorch._torch_runner(peer), batch,
                                 args)
    built.runner.close()
    assert len(row["ratios"]) == 1 and row["median_ratio"] > 0
    assert built.state.step.is_deleted()  # donated to the first step: the runner carries it
