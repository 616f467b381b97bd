"""XLA:CPU compiler flags that jaxgen's entry points set before JAX starts.

``CPU_FLAGS`` holds flags that make the training steps faster on CPUs without changing what
they compute (same float32 operations, no fast-math); each was measured against the default
with ``benchmarks/cpu_vs_pytorch.py`` and alternating A/B runs (``benchmarks/notes/
cpu_speed.md``):

* ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: run convolutions with
  XLA's own (Eigen) kernels instead of YNNPACK, keeping XLA's default YNNPACK fusions of
  reductions and elementwise ops. On the 2-core Xeon of the measurements (quiet machine) the
  steps were 1.76× (DDPM UNet), 1.50× (conv VAE), 1.13× (CycleGAN) and 1.10× (DCGAN) faster;
  the MLP VAE, which has no convolution, was unchanged.

XLA reads ``XLA_FLAGS`` once, when the first computation initialises the CPU backend, so
:func:`set_cpu_flags` must run before that (``experiments/main.py`` and the benchmark scripts
call it first). A flag already present in ``XLA_FLAGS`` is left as the user set it; set
``JAXGEN_NO_XLA_FLAGS=1`` to add none. Only ``xla_cpu_*`` flags are set: accelerators compile
as before. The flags are added only for the jaxlib versions they were measured with
(:data:`JAXLIB_VERSIONS`): XLA aborts the process on a flag it does not know, and experimental
flags come and go between releases.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import MutableMapping

CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
JAXLIB_VERSIONS = ((0, 10), (0, 11))  # [first, last) jaxlib (major, minor) measured
OPT_OUT = "JAXGEN_NO_XLA_FLAGS"


def _jaxlib_version() -> tuple[int, int] | None:
    try:
        major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def set_cpu_flags(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Append the :data:`CPU_FLAGS` that `environ`'s ``XLA_FLAGS`` does not set yet.

    Returns the flags added: none when ``JAXGEN_NO_XLA_FLAGS`` is set or the installed jaxlib
    is outside :data:`JAXLIB_VERSIONS`. Call it before the first JAX computation of the
    process.
    """
    version = _jaxlib_version()
    first, last = JAXLIB_VERSIONS
    if environ.get(OPT_OUT, "") not in ("", "0") or version is None or not (
            first <= version < last):
        return []
    current = environ.get("XLA_FLAGS", "")
    present = {flag.split("=", 1)[0] for flag in current.split()}
    added = [flag for flag in CPU_FLAGS if flag.split("=", 1)[0] not in present]
    if added:
        environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    return added
