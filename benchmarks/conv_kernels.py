"""Single convolutions on this CPU: XLA's kernels against PyTorch's, forward and both gradients.

The training-step comparison (``cpu_vs_pytorch.py``) says how far each step is from its
PyTorch peer; this script says how much of that is the convolution kernels themselves. For each
layer shape (defaults: the 3×3 convolutions of the ``ddpm_fmnist`` UNet at batch 32 and the
image layers of the DCGAN and conv VAE) it times, on the same input:

* jaxgen's side: ``jaxgen.models.layers.conv_general_dilated`` (NHWC / HWIO, as the models'
  ``layers.Conv`` calls it: XLA's convolution, with sub-pixel input gradients for strided
  layers), its input gradient and its kernel gradient, each its own jitted function of what
  it needs, with the XLA flags jaxgen sets (``jaxgen/training/xla_flags.py``), so each figure
  includes the layout copies XLA adds for that computation;
* PyTorch's side, when torch is installed: ``conv2d`` in NCHW, as the peers run it, and
  ``aten.convolution_backward`` for the input and the kernel gradient (oneDNN on x86).

It prints GFLOP/s per pass (2·B·H_out·W_out·K_h·K_w·C_in·C_out per pass) and the jaxgen ÷
PyTorch time ratio per layer, and writes the figures as JSON.

Note for reading ``profile_step.py`` on a CPU: with XLA's own (Eigen) convolution kernels a
convolution's thunk returns before its work is done (it runs in the intra-op thread pool), so
a trace attributes almost no time to convolutions; this script times them directly.

Usage (from the repository root)::

    python -m benchmarks.conv_kernels
    python -m benchmarks.conv_kernels --layers 32x16x16x64:64:3:1   # BxHxWxC_in:C_out:K:stride
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

from jaxgen.training import xla_flags

xla_flags.set_cpu_flags()  # before JAX initialises its CPU backend

import jax  # noqa: E402

from benchmarks import _common  # noqa: E402
from jaxgen.models import layers  # noqa: E402

try:  # torch is optional: without it only jaxgen's side is timed
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution: input ``[B, H, W, C_in]``, ``C_out`` outputs, a K×K kernel, a stride
    and ``(K − 1) // 2`` zero padding per side ("same" for stride 1)."""

    name: str
    batch: int
    height: int
    width: int
    c_in: int
    c_out: int
    kernel: int
    stride: int = 1

    @property
    def pad(self) -> int:
        return (self.kernel - 1) // 2 if self.stride == 1 else 1

    @property
    def out_hw(self) -> tuple[int, int]:
        f = lambda n: (n + 2 * self.pad - self.kernel) // self.stride + 1
        return f(self.height), f(self.width)

    @property
    def flops(self) -> float:
        h, w = self.out_hw
        return 2.0 * self.batch * h * w * self.kernel**2 * self.c_in * self.c_out


DEFAULT_LAYERS = (
    Layer("UNet 32×32, 32→32", 32, 32, 32, 32, 32, 3),
    Layer("UNet 32×32 up, 96→32", 32, 32, 32, 96, 32, 3),
    Layer("UNet 16×16, 64→64", 32, 16, 16, 64, 64, 3),
    Layer("UNet 8×8, 64→64", 32, 8, 8, 64, 64, 3),
    Layer("DCGAN D first, 1→32 /2", 64, 32, 32, 1, 32, 4, 2),
    Layer("DCGAN D, 32→64 /2", 64, 16, 16, 32, 64, 4, 2),
    Layer("VAE encoder, 32→64 /2", 128, 14, 14, 32, 64, 4, 2),
)


def parse_layer(text: str) -> Layer:
    """``BxHxWxC_in:C_out:K[:stride]`` -> a :class:`Layer`."""
    try:
        fields = text.split(":")
        b, h, w, c = (int(v) for v in fields[0].split("x"))
        c_out, k = int(fields[1]), int(fields[2])
        stride = int(fields[3]) if len(fields) > 3 else 1
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"layer {text!r}: expected BxHxWxC_in:C_out:K[:stride], e.g. 32x16x16x64:64:3:1"
        ) from None
    if min(b, h, w, c, c_out, k, stride) < 1:
        raise argparse.ArgumentTypeError(f"layer {text!r}: every size must be positive")
    return Layer(text, b, h, w, c, c_out, k, stride)


def time_ms(fn: Callable[[], Any], min_seconds: float, repeats: int) -> float:
    """Median over `repeats` of the mean time of one call, each repeat lasting about
    `min_seconds` (after two untimed calls)."""
    fn(), fn()
    t0 = time.perf_counter()
    fn()
    calls = max(3, int(min_seconds / max(time.perf_counter() - t0, 1e-6)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return 1e3 * statistics.median(times)


def jax_passes(layer: Layer) -> dict[str, Callable[[], Any]]:
    """Forward, input-gradient and kernel-gradient calls of the layer in JAX (NHWC)."""
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (layer.batch, layer.height, layer.width, layer.c_in))
    w = 0.1 * jax.random.normal(kw, (layer.kernel, layer.kernel, layer.c_in, layer.c_out))
    pads = ((layer.pad, layer.pad),) * 2
    conv = lambda x, w: layers.conv_general_dilated(
        x, w, (layer.stride,) * 2, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = jax.random.normal(kg, (layer.batch, *layer.out_hw, layer.c_out))
    fwd = jax.jit(conv)
    d_x = jax.jit(lambda w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
    d_w = jax.jit(lambda x, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
    return {"forward": lambda: fwd(x, w).block_until_ready(),
            "input grad": lambda: d_x(w, g).block_until_ready(),
            "kernel grad": lambda: d_w(x, g).block_until_ready()}


def torch_passes(layer: Layer) -> dict[str, Callable[[], Any]]:
    """The same three passes in PyTorch (NCHW, as the peers run): ``conv2d`` and
    ``aten.convolution_backward`` for one gradient at a time."""
    x = torch.randn(layer.batch, layer.c_in, layer.height, layer.width)
    w = 0.1 * torch.randn(layer.c_out, layer.c_in, layer.kernel, layer.kernel)
    g = torch.randn(layer.batch, layer.c_out, *layer.out_hw)
    stride, pad = [layer.stride] * 2, [layer.pad] * 2

    def backward(which):
        mask = [which == "input", which == "kernel", False]
        return torch.ops.aten.convolution_backward(g, x, w, None, stride, pad, [1, 1], False,
                                                   [0, 0], 1, mask)

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, stride=layer.stride, padding=layer.pad)

    return {"forward": forward, "input grad": lambda: backward("input"),
            "kernel grad": lambda: backward("kernel")}


def measure(layer: Layer, args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"layer": dataclasses.asdict(layer), "gflop_per_pass": layer.flops / 1e9,
                           "jaxgen_ms": {}, "pytorch_ms": {}}
    sides = [("jaxgen_ms", jax_passes(layer))]
    if torch is not None:
        sides.append(("pytorch_ms", torch_passes(layer)))
    for pass_name in ("forward", "input grad", "kernel grad"):
        for key, passes in sides:  # alternate the two sides pass by pass
            row[key][pass_name] = time_ms(passes[pass_name], args.min_seconds, args.repeats)
    return row


def print_row(row: dict[str, Any]) -> None:
    gflop = row["gflop_per_pass"]
    print(f"{row['layer']['name']}  ({gflop:.3f} GFLOP per pass)")
    for pass_name, ms in row["jaxgen_ms"].items():
        line = f"  {pass_name:<12} jaxgen {ms:8.2f} ms {gflop / ms * 1e3:6.0f} GFLOP/s"
        theirs = row["pytorch_ms"].get(pass_name)
        if theirs is not None:
            line += (f"   PyTorch {theirs:8.2f} ms {gflop / theirs * 1e3:6.0f} GFLOP/s"
                     f"   time ratio {ms / theirs:5.2f}")
        print(line)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="+", type=parse_layer, default=list(DEFAULT_LAYERS),
                        help="BxHxWxC_in:C_out:K[:stride] (default: the models' layers)")
    parser.add_argument("--min_seconds", type=float, default=0.5,
                        help="length of one timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.min_seconds <= 0 or args.repeats < 1:
        parser.error("--min_seconds must be positive and --repeats at least 1")
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    machine = _common.machine_info()
    if torch is not None:
        machine["torch"] = torch.__version__
        machine["torch_threads"] = torch.get_num_threads()
    print(_common.describe_machine(machine)
          + ("" if torch is None else f"; torch {torch.__version__}, "
                                      f"{torch.get_num_threads()} threads"))
    rows = []
    for layer in args.layers:
        rows.append(measure(layer, args))
        print_row(rows[-1])
    results = {"benchmark": "conv_kernels", "timestamp": _common.now_iso(), "machine": machine,
               "settings": {"min_seconds": args.min_seconds, "repeats": args.repeats},
               "results": rows}
    print(f"wrote {_common.write_json(results, args.output, 'conv_kernels')}")
    return results


if __name__ == "__main__":
    main()
