"""Transposed convolutions without zero-inserted inputs: same layer, same parameters.

XLA lowers a stride-s transposed convolution to a convolution of the input *dilated* by s
(s − 1 zeros between neighbours), so it multiplies mostly zeros (a 4×4 stride-2 transposed
convolution computes 4× the products it needs), and on the CPU the kernel gradient of that
dilated convolution runs on a slow generic path (≈ 100× slower than an ordinary convolution's
at DCGAN's sizes). :func:`conv_transpose_subpixel` computes the *same* linear map as one
stride-1 convolution to ``s^N · C_out`` channels followed by depth-to-space ("sub-pixel
convolution", Shi et al. 2016, arXiv:1609.05158): output pixel ``s·q + a`` only sees the
kernel taps ``k ≡ (p_lo − a) mod s``, so each of the ``s^N`` output phases is a small
stride-1 convolution of the undilated input, with a kernel gathered from the same parameter
(zero-padded where a phase has fewer taps). Neither the forward pass nor either gradient
touches an inserted zero.

The result equals ``lax.conv_transpose`` up to float rounding (the same products, summed in
another order) and is differentiated by ordinary JAX autodiff. :class:`ConvTranspose` is a
drop-in ``flax.linen.ConvTranspose`` with the same parameter names, shapes and initialisers,
so parameter trees and checkpoints are unchanged. It uses the rewrite on CPUs, where it was
measured (``benchmarks/notes/cpu_speed.md``); other platforms keep XLA's own lowering.
Layouts: inputs ``[B, *spatial, C]``, kernels ``[*K, C_in, C_out]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["ConvTranspose", "conv_transpose_subpixel"]


def _channels_last(nd: int) -> tuple[str, str, str]:
    spatial = "DHW"[-nd:] if nd <= 3 else None
    if spatial is None:
        raise ValueError(f"only 1 to 3 spatial dimensions are supported, got {nd}.")
    return (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")


def transpose_padding(kernel_size: Sequence[int], strides: Sequence[int], padding
                      ) -> tuple[tuple[int, int], ...]:
    """Per-dimension (low, high) padding of the dilated input, as ``flax.linen.ConvTranspose``
    gives it to ``lax.conv_transpose``: explicit pairs are used as they are; ``"SAME"`` and
    ``"VALID"`` follow ``lax.conv_transpose`` (Keras' ``Conv2DTranspose`` output sizes)."""
    if isinstance(padding, str):
        pads = []
        for k, s in zip(kernel_size, strides, strict=True):
            if padding == "SAME":
                total = k + s - 2
                lo = k - 1 if s > k - 1 else math.ceil(total / 2)
            elif padding == "VALID":
                total = k + s - 2 + max(k - s, 0)
                lo = k - 1
            else:
                raise ValueError(f"unsupported padding {padding!r}.")
            pads.append((lo, total - lo))
        return tuple(pads)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _subpixel_plan(n: int, k: int, s: int, lo: int, hi: int):
    """One spatial dimension of a stride-s transposed convolution, split into its s phases.

    Output ``o = s·q + a`` of the transposed convolution (padding ``lo``/``hi`` of the
    dilated input, kernel not flipped) is ``Σ_j w[k_a + s·j] · x[q + d_a + j]`` with
    ``k_a = (lo − a) mod s`` and ``d_a = (a + k_a − lo) / s``. Returns None when the output
    length is not a multiple of s (the phases would differ in length); else the phase count
    per output ``m``, the common window ``width`` (a phase with fewer taps gets zeros), each
    phase's first tap ``k_a`` and tap count, and its window offset ``d_a``.
    """
    n_out = (n - 1) * s + 1 + lo + hi - k + 1
    if n_out <= 0 or n_out % s:
        return None
    first = [(lo - a) % s for a in range(s)]
    counts = [len(range(ka, k, s)) for ka in first]
    offsets = [(a + ka - lo) // s for a, ka in enumerate(first)]
    return n_out // s, max(counts), first, counts, offsets


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding,
                            *, precision=None, preferred_element_type=None) -> jax.Array:
    """``lax.conv_transpose(x, kernel, strides, padding)`` (channels last, kernel not flipped,
    as ``flax.linen.ConvTranspose`` calls it) as a stride-1 convolution + depth-to-space.

    Args:
      x: ``[B, *spatial, C_in]``.
      kernel: ``[*K, C_in, C_out]``.
      strides: s per spatial dimension.
      padding: ``"SAME"``, ``"VALID"`` or (low, high) pairs of the dilated input, as in
        ``flax.linen.ConvTranspose``.

    Returns:
      ``[B, *spatial_out, C_out]``, equal to ``lax.conv_transpose`` up to float rounding.
      Falls back to ``lax.conv_transpose`` when some output length is not a multiple of its
      stride.
    """
    nd = x.ndim - 2
    ksize = kernel.shape[:nd]
    strides = tuple(strides)
    pads = transpose_padding(ksize, strides, padding)
    plans = [_subpixel_plan(n, k, s, lo, hi)
             for n, k, s, (lo, hi) in zip(x.shape[1:-1], ksize, strides, pads, strict=True)]
    dn = _channels_last(nd)
    if any(p is None for p in plans) or all(s == 1 for s in strides):
        return lax.conv_transpose(x, kernel, strides, pads, dimension_numbers=dn,
                                  precision=precision,
                                  preferred_element_type=preferred_element_type)
    c_in, c_out = kernel.shape[-2:]

    # Kernel [*K, C_in, C_out] -> [*width, C_in, *s, C_out]: tap j of phase a along a
    # dimension is w[k_a + s·j], or a zero (index K of the zero-padded kernel) past the taps.
    w = kernel
    for d, ((_, width, first, counts, _), s) in enumerate(zip(plans, strides, strict=True)):
        axis = 2 * d  # the dimensions before it are already split into (width, s)
        w = jnp.pad(w, [(0, 1) if i == axis else (0, 0) for i in range(w.ndim)])
        index = np.full((width, s), ksize[d], np.int32)
        for a in range(s):
            index[: counts[a], a] = first[a] + s * np.arange(counts[a])
        w = jnp.take(w, index.reshape(-1), axis=axis)
        w = w.reshape(w.shape[:axis] + (width, s) + w.shape[axis + 1:])
    # Axes now: (width_0, s_0, width_1, s_1, ..., C_in, C_out).
    perm = ([2 * d for d in range(nd)] + [2 * nd] + [2 * d + 1 for d in range(nd)]
            + [2 * nd + 1])
    w = jnp.transpose(w, perm).reshape(
        tuple(p[1] for p in plans) + (c_in, math.prod(strides) * c_out))

    # One stride-1 convolution computes every phase: output r of dimension d is the window
    # starting at input r + min_a d_a; phase a's outputs start at r = d_a − min_a d_a.
    conv_pads = []
    for n, (m, width, _, _, offsets) in zip(x.shape[1:-1], plans, strict=True):
        d_min = min(offsets)
        length = m + max(offsets) - d_min
        conv_pads.append((-d_min, length - 1 + d_min + width - 1 - (n - 1)))
    # Padding as its own op and a VALID convolution: XLA:CPU computes the kernel gradient of
    # a *padded* 2×2 convolution on a slow generic path (100× slower at 64×8×8×64 → 128).
    x = lax.pad(x, jnp.array(0, x.dtype), [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in conv_pads]
                + [(0, 0, 0)])
    y = lax.conv_general_dilated(x, w, (1,) * nd, "VALID", dimension_numbers=dn,
                                 precision=precision,
                                 preferred_element_type=preferred_element_type)
    b = y.shape[0]
    y = y.reshape(y.shape[:-1] + strides + (c_out,))  # [B, *L, *s, C_out]
    for d, (m, _, _, _, offsets) in enumerate(plans):
        d_min = min(offsets)
        if len(set(offsets)) == 1:
            y = lax.slice_in_dim(y, offsets[0] - d_min, offsets[0] - d_min + m, axis=1 + d)
        else:
            phases = [lax.slice_in_dim(lax.index_in_dim(y, a, axis=1 + nd + d, keepdims=False),
                                       o - d_min, o - d_min + m, axis=1 + d)
                      for a, o in enumerate(offsets)]
            y = jnp.stack(phases, axis=1 + nd + d)
    # [B, *m, *s, C_out] -> [B, m_0, s_0, m_1, s_1, ..., C_out] -> [B, *(m·s), C_out].
    perm = [0] + [i for d in range(nd) for i in (1 + d, 1 + nd + d)] + [1 + 2 * nd]
    y = jnp.transpose(y, perm)
    return y.reshape((b,) + tuple(p[0] * s for p, s in zip(plans, strides, strict=True))
                     + (c_out,))


class ConvTranspose(nn.ConvTranspose):
    """``flax.linen.ConvTranspose`` computed by :func:`conv_transpose_subpixel`.

    Same attributes, parameter names (``kernel [*K, C_in, C_out]``, ``bias``), shapes and
    initialisers as ``flax.linen.ConvTranspose`` (and the same automatic name,
    ``ConvTranspose_<i>``), so a parameter tree or checkpoint of one loads into the other.
    Options the sub-pixel form does not cover (kernel dilation, a mask, ``transpose_kernel``,
    ``"CIRCULAR"`` padding, several batch dimensions) use ``flax.linen.ConvTranspose``'s
    computation.
    """

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        kernel_size = ((self.kernel_size,) if isinstance(self.kernel_size, int)
                       else tuple(self.kernel_size))
        nd = len(kernel_size)
        strides = self.strides if self.strides is not None else 1
        strides = (strides,) * nd if isinstance(strides, int) else tuple(strides)
        dilation = self.kernel_dilation if self.kernel_dilation is not None else 1
        dilation = (dilation,) * nd if isinstance(dilation, int) else tuple(dilation)
        padding = nn.linear.canonicalize_padding(self.padding, nd)
        if (self.mask is not None or self.transpose_kernel or padding == "CIRCULAR"
                or any(d != 1 for d in dilation) or inputs.ndim != nd + 2):
            return super().__call__(inputs)
        kernel = self.param("kernel", self.kernel_init,
                            kernel_size + (inputs.shape[-1], self.features), self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        options = dict(precision=self.precision,
                       preferred_element_type=self.preferred_element_type)
        pads = transpose_padding(kernel_size, strides, padding)
        # The rewrite is measured on CPUs only; elsewhere XLA keeps its own lowering (cuDNN
        # computes transposed convolutions as data gradients without inserted zeros).
        y = lax.platform_dependent(
            inputs, kernel,
            cpu=lambda x, w: conv_transpose_subpixel(x, w, strides, pads, **options),
            default=lambda x, w: lax.conv_transpose(x, w, strides, pads,
                                                    dimension_numbers=_channels_last(nd),
                                                    **options))
        if bias is not None:
            y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        return y
