"""Strided and transposed convolutions without zero-inserted data: same layers, same parameters.

XLA lowers a stride-s transposed convolution to a convolution of the input *dilated* by s
(s − 1 zeros between neighbours), so it multiplies mostly zeros (a 4×4 stride-2 transposed
convolution computes 4× the products it needs), and on the CPU the kernel gradient of that
dilated convolution runs on a slow generic path (≈ 100× slower than an ordinary convolution's
at DCGAN's sizes). :func:`conv_transpose_subpixel` computes the *same* linear map as one
stride-1 convolution to ``s^N · C_out`` channels followed by depth-to-space ("sub-pixel
convolution", Shi et al. 2016, arXiv:1609.05158): in groups of s consecutive outputs
(suitably aligned) every output reads the same window of the undilated input, each through
its own taps ``k ≡ const mod s``, so all ``s^N`` sub-positions are one small stride-1
convolution, with a kernel gathered from the same parameter (zero-padded where a
sub-position has fewer taps). Neither the forward pass nor either gradient touches an
inserted zero.

The result equals ``lax.conv_transpose`` up to float rounding (the same products, summed in
another order) and is differentiated by ordinary JAX autodiff. :class:`ConvTranspose` is a
drop-in ``flax.linen.ConvTranspose`` with the same parameter names, shapes and initialisers,
so parameter trees and checkpoints are unchanged. It uses the rewrite on CPUs, where it was
measured (``benchmarks/notes/cpu_speed.md``); other platforms keep XLA's own lowering.
The input gradient of a stride-s convolution is the same kind of transposed convolution (of
the cotangent, with the flipped kernel): :class:`Conv` (a drop-in ``flax.linen.Conv``) computes
it with the sub-pixel form through a custom VJP (:func:`conv_strided`), again on CPUs only.
Nearest-neighbour upsampling followed by a convolution is itself a transposed convolution of
the small input: :class:`UpsampleConv` (the UNet's upsampling) computes it with the same
sub-pixel form, without the upsampled tensor.
Layouts: inputs ``[B, *spatial, C]``, kernels ``[*K, C_in, C_out]``.

:class:`ExampleDropout` (dropout with each example's mask drawn from its global index, so
independent of the device count) is shared by the classifier and the UNet.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["Conv", "ConvTranspose", "ExampleDropout", "UpsampleConv", "conv_general_dilated",
           "conv_strided", "conv_transpose_subpixel", "upsample_conv_general_dilated",
           "upsample_nearest"]


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
    """One spatial dimension of a stride-s transposed convolution as groups of s outputs.

    Output ``o`` of the transposed convolution (input dilated by s, padded by ``lo``/``hi``,
    kernel not flipped) is ``Σ_k w[k] · x[(o + k − lo) / s]`` over the taps k that make the
    index whole. Grouping the outputs as ``o = s·t + (lo + 1 − s) + a``, ``a ∈ [0, s)``, every
    output of group t reads the same input window ``x[t], x[t + 1], …``: sub-position a uses
    the taps ``k = s − 1 − a + s·j`` on ``x[t + j]``. So one stride-1 convolution with
    ``s · C_out`` outputs per position t computes every group, and depth-to-space followed by
    one contiguous slice gives the output.

    Returns the output length, the first and last group ``t``, the window width (a
    sub-position with fewer taps gets zeros), and each sub-position's taps.
    """
    n_out = (n - 1) * s + 1 + lo + hi - k + 1
    shift = lo + 1 - s  # output index of group 0's first element
    t_first = (0 - shift) // s
    t_last = (n_out - 1 - shift) // s
    taps = [list(range(s - 1 - a, k, s)) for a in range(s)]
    return n_out, t_first, t_last, max(len(t) for t in taps), taps


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
    """
    nd = x.ndim - 2
    ksize = kernel.shape[:nd]
    strides = tuple(strides)
    pads = transpose_padding(ksize, strides, padding)
    dn = _channels_last(nd)
    plans = [_subpixel_plan(n, k, s, lo, hi)
             for n, k, s, (lo, hi) in zip(x.shape[1:-1], ksize, strides, pads, strict=True)]
    if all(s == 1 for s in strides) or any(p[0] <= 0 for p in plans):
        return lax.conv_transpose(x, kernel, strides, pads, dimension_numbers=dn,
                                  precision=precision,
                                  preferred_element_type=preferred_element_type)
    c_in, c_out = kernel.shape[-2:]

    # Kernel [*K, C_in, C_out] -> [*width, C_in, *s, C_out]: tap j of sub-position a along a
    # dimension is w[s − 1 − a + s·j], or a zero (index K of the zero-padded kernel).
    w = kernel
    for d, ((_, _, _, width, taps), s) in enumerate(zip(plans, strides, strict=True)):
        axis = 2 * d  # the dimensions before it are already split into (width, s)
        w = jnp.pad(w, [(0, 1) if i == axis else (0, 0) for i in range(w.ndim)])
        index = np.full((width, s), ksize[d], np.int32)
        for a, tap in enumerate(taps):
            index[: len(tap), a] = tap
        w = jnp.take(w, index.reshape(-1), axis=axis)
        w = w.reshape(w.shape[:axis] + (width, s) + w.shape[axis + 1:])
    # Axes now: (width_0, s_0, width_1, s_1, ..., C_in, C_out).
    perm = ([2 * d for d in range(nd)] + [2 * nd] + [2 * d + 1 for d in range(nd)]
            + [2 * nd + 1])
    w = jnp.transpose(w, perm).reshape(
        tuple(p[3] for p in plans) + (c_in, math.prod(strides) * c_out))

    # Output position r of the convolution is group t_first + r, reading x[t_first + r + j].
    # Padding as its own op and a VALID convolution: XLA:CPU computes the kernel gradient of
    # a *padded* 2×2 convolution on a slow generic path (100× slower at 64×8×8×64 → 128).
    x = lax.pad(x, jnp.array(0, x.dtype),
                [(0, 0, 0)] + [(-t_first, t_last + width - n, 0) for n, (_, t_first, t_last,
                               width, _) in zip(x.shape[1:-1], plans, strict=True)]
                + [(0, 0, 0)])
    y = lax.conv_general_dilated(x, w, (1,) * nd, "VALID", dimension_numbers=dn,
                                 precision=precision,
                                 preferred_element_type=preferred_element_type)
    b, groups = y.shape[0], y.shape[1:-1]
    # Depth-to-space: [B, *T, *s, C_out] -> [B, T_0, s_0, T_1, s_1, ..., C_out] -> [B, *(T·s)],
    # then the outputs start at index (lo + 1 − s) + s·t_first ≤ 0 of the first group.
    y = y.reshape((b,) + groups + strides + (c_out,))
    perm = [0] + [i for d in range(nd) for i in (1 + d, 1 + nd + d)] + [1 + 2 * nd]
    y = jnp.transpose(y, perm).reshape(
        (b,) + tuple(t * s for t, s in zip(groups, strides, strict=True)) + (c_out,))
    start = [-(lo + 1 - s + s * p[1]) for (lo, _), s, p in zip(pads, strides, plans, strict=True)]
    return lax.slice(y, [0, *start, 0],
                     [b, *(st + p[0] for st, p in zip(start, plans, strict=True)), c_out])


class ConvTranspose(nn.ConvTranspose):
    """``flax.linen.ConvTranspose`` computed by :func:`conv_transpose_subpixel` on CPUs.

    Same attributes, parameter names (``kernel [*K, C_in, C_out]``, ``bias``), shapes and
    initialisers as ``flax.linen.ConvTranspose`` (and the same automatic name,
    ``ConvTranspose_<i>``), so a parameter tree or checkpoint of one loads into the other.

    ``lax.conv_transpose(x, w, s, pads)`` (kernel not flipped) *is*
    ``lax.conv_general_dilated(x, w, 1, pads, lhs_dilation=s)``, so the layer is flax's own
    ``Conv`` with input dilation s and the transposed convolution's padding, run in this
    module's scope (``nn.share_scope``: the parameters stay ``kernel`` and ``bias`` here) and
    computed through flax's ``conv_general_dilated`` hook by :func:`conv_general_dilated`:
    flax creates the parameters, promotes dtypes and adds the bias. Options the sub-pixel form
    does not cover (kernel dilation, a mask, ``transpose_kernel``, ``"CIRCULAR"`` padding,
    several batch dimensions) use ``flax.linen.ConvTranspose``'s computation.
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
        padding = self.padding
        if (self.mask is not None or self.transpose_kernel
                or (isinstance(padding, str) and padding not in ("SAME", "VALID"))
                or any(d != 1 for d in dilation) or inputs.ndim != nd + 2):
            return super().__call__(inputs)
        if isinstance(padding, str):  # lax.conv_transpose's rule; pairs pass through as given
            padding = transpose_padding(kernel_size, strides, padding)
        conv = nn.Conv(
            self.features, kernel_size, strides=1, padding=padding, input_dilation=strides,
            use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
            precision=self.precision, kernel_init=self.kernel_init, bias_init=self.bias_init,
            promote_dtype=self.promote_dtype,
            conv_general_dilated=functools.partial(
                conv_general_dilated, preferred_element_type=self.preferred_element_type))
        nn.share_scope(self, conv)
        return conv(inputs)


# ---- Strided convolutions: input gradients without zero-inserted cotangents ---------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_strided(x: jax.Array, kernel: jax.Array, strides: tuple[int, ...],
                 pads: tuple[tuple[int, int], ...], precision=None) -> jax.Array:
    """``lax.conv_general_dilated(x, kernel, strides, pads)`` (channels last, explicit
    padding) whose input gradient is :func:`conv_transpose_subpixel`.

    XLA differentiates a stride-s convolution's input as a convolution of the cotangent
    *dilated* by s; on the CPU that runs on zero-inserted data (measured: the largest single
    op of the conv VAE's step). The input gradient is the transposed convolution of the
    cotangent with the spatially flipped kernel, its channels swapped; the sub-pixel form
    computes it without inserted zeros. The kernel gradient is XLA's own.
    """
    return _conv(x, kernel, strides, pads, precision)


def _conv(x, kernel, strides, pads, precision):
    return lax.conv_general_dilated(x, kernel, strides, pads, precision=precision,
                                    dimension_numbers=_channels_last(x.ndim - 2))


def _conv_strided_fwd(x, kernel, strides, pads, precision):
    return _conv(x, kernel, strides, pads, precision), (x, kernel)


def _conv_strided_bwd(strides, pads, precision, residuals, g):
    x, kernel = residuals
    nd = x.ndim - 2
    _, kernel_vjp = jax.vjp(lambda w: _conv(x, w, strides, pads, precision), kernel)
    (d_kernel,) = kernel_vjp(g)
    flipped = jnp.swapaxes(jnp.flip(kernel, axis=tuple(range(nd))), -1, -2)
    # Output i of the forward pass reads x[s·i + k − lo]: the dilated cotangent, padded by
    # K − 1 − lo below and K − 1 − hi (+ the input rows no output reaches) above, correlated
    # with the flipped kernel, gives back exactly n inputs.
    t_pads = tuple((k - 1 - lo, k - 1 - hi + (n + lo + hi - k) % s)
                   for n, k, s, (lo, hi) in zip(x.shape[1:-1], kernel.shape[:nd], strides, pads,
                                                strict=True))
    d_x = conv_transpose_subpixel(g, flipped, strides, t_pads, precision=precision)
    return d_x.astype(x.dtype), d_kernel


conv_strided.defvjp(_conv_strided_fwd, _conv_strided_bwd)


def _ungrouped_channels_last(lhs, rhs, rhs_dilation, dimension_numbers, feature_group_count,
                             batch_group_count) -> bool:
    """1 to 3 spatial dimensions, an undilated kernel, no groups, channels-last layouts."""
    nd = lhs.ndim - 2
    ones = (1,) * nd
    return (1 <= nd <= 3
            and tuple(rhs_dilation or ones) == ones
            and feature_group_count == 1 and batch_group_count == 1
            and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _channels_last(nd)))


def _undilated_ungrouped_channels_last(lhs, rhs, lhs_dilation, rhs_dilation,
                                       dimension_numbers, feature_group_count,
                                       batch_group_count) -> bool:
    """Whether a convolution call is the plain kind the CPU rewrites cover: 1 to 3 spatial
    dimensions, no dilation, no groups, channels-last layouts."""
    ones = (1,) * (lhs.ndim - 2)
    return (tuple(lhs_dilation or ones) == ones
            and _ungrouped_channels_last(lhs, rhs, rhs_dilation, dimension_numbers,
                                         feature_group_count, batch_group_count))


def _explicit_pads(padding, spatial, kernel_size, strides) -> tuple[tuple[int, int], ...]:
    """``"SAME"``/``"VALID"`` or (low, high) pairs as int pairs, for an input of `spatial`."""
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(spatial, kernel_size, strides, padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated``, computed on CPUs without zero-inserted data where it can:

    - a strided, undilated, ungrouped, channels-last convolution (the models' downsampling
      layers) by :func:`conv_strided`, whose input gradient is a sub-pixel transposed
      convolution;
    - a stride-1, input-dilated one (explicit padding, an undilated kernel, ungrouped,
      channels last): a transposed convolution (:class:`ConvTranspose`), by
      :func:`conv_transpose_subpixel`.

    Every other call, and every other platform, is ``lax.conv_general_dilated`` itself."""
    nd = lhs.ndim - 2
    ones = (1,) * nd
    plain = functools.partial(
        lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
    input_dilation = tuple(lhs_dilation or ones)
    # String padding with input dilation is lax's own error (the plain call raises it).
    transposed = (
        tuple(window_strides) == ones and input_dilation != ones
        and not isinstance(padding, str)
        and _ungrouped_channels_last(lhs, rhs, rhs_dilation, dimension_numbers,
                                     feature_group_count, batch_group_count))
    if transposed:
        # The rewrite is measured on CPUs only; elsewhere XLA keeps its own lowering (cuDNN
        # computes transposed convolutions as data gradients without inserted zeros).
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        return lax.platform_dependent(
            lhs, rhs,
            cpu=lambda x, w: conv_transpose_subpixel(
                x, w, input_dilation, pads, precision=precision,
                preferred_element_type=preferred_element_type),
            default=lambda x, w: plain(x, w))
    covered = (
        any(s > 1 for s in window_strides) and preferred_element_type is None
        and _undilated_ungrouped_channels_last(lhs, rhs, lhs_dilation, rhs_dilation,
                                               dimension_numbers, feature_group_count,
                                               batch_group_count))
    if not covered:
        return plain(lhs, rhs)
    pads = _explicit_pads(padding, lhs.shape[1:-1], rhs.shape[:nd], window_strides)
    return lax.platform_dependent(
        lhs, rhs,
        cpu=lambda x, w: conv_strided(x, w, tuple(window_strides), pads, precision),
        default=lambda x, w: plain(x, w))


class Conv(nn.Conv):
    """``flax.linen.Conv`` whose strided convolutions differentiate their input without
    zero-inserted cotangents on CPUs (:func:`conv_general_dilated`). Same attributes,
    parameters, initialisers and automatic name (``Conv_<i>``); the forward pass of a strided
    convolution is ``lax.conv_general_dilated`` itself. (An input-dilated one, i.e. a
    transposed convolution, is computed in the sub-pixel form, as by :class:`ConvTranspose`.)"""

    conv_general_dilated: Callable[..., jax.Array] | None = conv_general_dilated


# ---- Nearest-neighbour upsampling followed by a convolution, as one transposed convolution --


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
    """Repeat every spatial position of ``x: [B, *spatial, C]`` `factor` times per dimension."""
    for axis in range(1, x.ndim - 1):
        x = jnp.repeat(x, factor, axis=axis)
    return x


def _box_kernel(kernel: jax.Array, factor: int, nd: int) -> jax.Array:
    """``kernel [*K, C_in, C_out]`` summed over every window of `factor` consecutive taps
    (zero beyond its ends), per spatial dimension: ``[*(K + factor − 1), C_in, C_out]``."""
    for axis in range(nd):
        k = kernel.shape[axis]
        pad = [(0, 0)] * kernel.ndim
        pad[axis] = (factor - 1, factor - 1)
        padded = jnp.pad(kernel, pad)
        kernel = sum(lax.slice_in_dim(padded, factor - 1 - j, factor - 1 - j + k + factor - 1,
                                      axis=axis) for j in range(factor))
    return kernel


def upsample_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                                  rhs_dilation=None, dimension_numbers=None,
                                  feature_group_count=1, batch_group_count=1, precision=None,
                                  preferred_element_type=None, *, factor: int = 2):
    """Nearest-neighbour ×`factor` upsampling of `lhs`, then ``lax.conv_general_dilated``.

    On CPUs the stride-1, undilated, ungrouped, channels-last case is computed without
    materialising the upsampled input: nearest upsampling is a transposed convolution with a
    box of `factor` ones, so upsampling then convolving with ``w`` (taps K, padding
    ``(lo, hi)`` of the upsampled input) is *one* transposed convolution of the small input,
    stride `factor`, with the kernel ``w`` summed over windows of `factor` taps (K + factor − 1
    taps) and padding ``(lo + factor − 1, hi + factor − 1)``, which
    :func:`conv_transpose_subpixel` computes at the input's resolution. For a 3×3 kernel and
    ×2 that is 16 products per input position and channel pair instead of 36, with the same
    parameters; the result equals the direct computation up to float rounding (each tap sum
    is formed once). Other calls, and other platforms, upsample and convolve as written.
    """
    nd = lhs.ndim - 2
    plain = lambda x, w: lax.conv_general_dilated(
        upsample_nearest(x, factor), w, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type)
    ones = (1,) * nd
    covered = (
        tuple(window_strides) == ones
        and _undilated_ungrouped_channels_last(lhs, rhs, lhs_dilation, rhs_dilation,
                                               dimension_numbers, feature_group_count,
                                               batch_group_count))
    if not covered:
        return plain(lhs, rhs)
    up_spatial = tuple(factor * n for n in lhs.shape[1:-1])
    pads = tuple((lo + factor - 1, hi + factor - 1)
                 for lo, hi in _explicit_pads(padding, up_spatial, rhs.shape[:nd], ones))

    def fused(x, w):
        return conv_transpose_subpixel(x, _box_kernel(w, factor, nd), (factor,) * nd, pads,
                                       precision=precision,
                                       preferred_element_type=preferred_element_type)

    return lax.platform_dependent(lhs, rhs, cpu=fused, default=plain)


class UpsampleConv(nn.Conv):
    """Nearest-neighbour ×2 upsampling followed by ``flax.linen.Conv``, computed on CPUs as one
    transposed convolution at the input's resolution (:func:`upsample_conv_general_dilated`).

    Same attributes, parameter names, shapes and initialisers as the ``flax.linen.Conv``
    applied to the upsampled input, so parameter trees and checkpoints are unchanged; only
    the computation differs (a 3×3 convolution after ×2 upsampling: 4/9 of the products).
    """

    conv_general_dilated: Callable[..., jax.Array] | None = upsample_conv_general_dilated


class ExampleDropout(nn.Module):
    """Dropout whose mask for each example depends only on the example's *global* index.

    Like ``nn.Dropout`` (zero with probability ``rate``, scale the rest by 1/(1 − rate)), but
    the mask of example i is drawn from ``fold_in(make_rng("dropout"), i)``, i counting over
    every device of ``axis_name``: with the same key on every device, any number of devices
    draws the masks one device would draw for the same global batch.

    Attributes:
      rate: the dropout probability, in [0, 1).
      axis_name: the device axis (the batch is this device's shard), or None when not mapped.
    """

    rate: float
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        key = self.make_rng("dropout")
        b = x.shape[0]
        first = jax.lax.axis_index(self.axis_name) * b if self.axis_name is not None else 0
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, first + jnp.arange(b))
        keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - self.rate, x.shape[1:]))(keys)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))
