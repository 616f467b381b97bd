"""benchmarks/conv_kernels.py: layer parsing, the FLOP count, and one tiny timed layer."""

import argparse

import pytest

from benchmarks import conv_kernels


def test_parse_layer_and_flops():
    layer = conv_kernels.parse_layer("2x8x6x3:5:3")
    assert (layer.batch, layer.height, layer.width, layer.c_in, layer.c_out) == (2, 8, 6, 3, 5)
    assert layer.stride == 1 and layer.pad == 1 and layer.out_hw == (8, 6)
    assert layer.flops == 2 * 2 * 8 * 6 * 9 * 3 * 5
    strided = conv_kernels.parse_layer("2x8x8x1:4:4:2")
    assert strided.out_hw == (4, 4) and strided.flops == 2 * 2 * 4 * 4 * 16 * 1 * 4
    for bad in ("2x8x8:4:3", "2x8x8x1:4", "2x8x8x0:4:3", "axbxcxd:1:1"):
        with pytest.raises(argparse.ArgumentTypeError, match="layer"):
            conv_kernels.parse_layer(bad)


def test_the_jax_passes_compute_the_convolution_and_its_gradients():
    layer = conv_kernels.parse_layer("2x6x6x3:4:3:2")
    passes = conv_kernels.jax_passes(layer)
    assert passes["forward"]().shape == (2, 3, 3, 4)
    assert passes["input grad"]().shape == (2, 6, 6, 3)
    assert passes["kernel grad"]().shape == (3, 3, 3, 4)


def test_one_tiny_layer_end_to_end(tmp_path):
    out = tmp_path / "conv.json"
    r = conv_kernels.main(["--layers", "2x6x6x3:4:3", "--min_seconds", "0.01", "--repeats",
                           "1", "--output", str(out)])
    assert out.exists()
    (row,) = r["results"]
    assert set(row["jaxgen_ms"]) == {"forward", "input grad", "kernel grad"}
    assert all(ms > 0 for ms in row["jaxgen_ms"].values())
    if conv_kernels.torch is not None:
        assert set(row["pytorch_ms"]) == set(row["jaxgen_ms"])
