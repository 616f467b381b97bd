"""The DDPM noise-prediction UNet (flax.linen).

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020, arXiv:2006.11239,
Appendix B: a PixelCNN++-style UNet (Salimans et al. 2017, arXiv:1701.05517) of wide ResNet
blocks with GroupNorm, a sinusoidal timestep embedding (Vaswani et al. 2017,
arXiv:1706.03762) added inside every block, and single-head self-attention at chosen
resolutions. The layout, initialisation and parameter count follow the authors' TensorFlow
implementation (``diffusion_tf/models/unet.py``): the CIFAR-10 configuration has 35,746,307
parameters.

Shapes: images ``x: [B, H, W, C]``, timesteps ``t: [B]``; the model returns the predicted
noise ``eps: [B, H, W, out_ch]`` in float32.

Class conditioning (``num_classes > 0``): a learned table of ``num_classes + 1`` class
embeddings (``class_embed``, each of the time embedding's width ``4 · ch``) is looked up by the
labels ``y: int [B]`` and *added to the time embedding* after its MLP, so the sum reaches every
ResNet block where the time embedding did (the conditioning of Dhariwal & Nichol 2021,
arXiv:2105.05233). The last row, label ``y == num_classes``, is the null class ∅: trained on
randomly dropped labels it gives the unconditional model of classifier-free guidance (Ho &
Salimans 2022, arXiv:2207.12598), ``ε̃ = (1 + w) ε(x, t, y) − w ε(x, t, ∅)``. With
``num_classes=0`` (the default) there is no table and no ``y``: the parameters and outputs are
those of the unconditional model.

Mixed precision: ``dtype`` is the computation dtype (e.g. ``jnp.bfloat16``); parameters are
created in ``param_dtype`` (float32), and GroupNorm statistics and the attention softmax are
computed in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import labels, layers

Dtype = Any

# The reference initialises every kernel with variance_scaling(1, "fan_avg", "uniform") and
# every bias with zeros; "init_scale 0" layers (each block's last conv, the attention output
# projection and the final conv) start at zero so that every residual branch, and the whole
# network, is the identity / zero map at initialisation.
_default_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
_zero_init = nn.initializers.zeros_init()


def timestep_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal timestep embedding of DDPM (arXiv:2006.11239, after arXiv:1706.03762).

    With ``half = dim // 2`` and frequencies ``f_i = exp(-i · log(10000) / (half − 1))`` for
    ``i = 0 … half − 1``, the embedding is ``[sin(t · f), cos(t · f)]`` (sines first, then
    cosines, as in the reference), zero-padded by one column when ``dim`` is odd.

    Args:
      t: timesteps ``[B]`` (integer or float).
      dim: embedding size, at least 4.

    Returns:
      ``[B, dim]`` float32.
    """
    if t.ndim != 1:
        raise ValueError(f"timesteps must have shape [B], got {tuple(t.shape)}.")
    if dim < 4:
        raise ValueError(f"timestep embedding needs dim >= 4, got {dim}.")
    half = dim // 2
    freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000.0) / (half - 1)))
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


def _norm(x: jax.Array, *, num_groups: int, dtype: Dtype, param_dtype: Dtype, name: str,
          act: bool = True) -> jax.Array:
    """GroupNorm (statistics and affine in float32), optionally swish, cast to ``dtype``.

    Must be called inside a compact method: the GroupNorm becomes a child of that module.
    """
    # bf16 keeps 8 mantissa bits: means and variances over a group of H·W·C/G values would be
    # too coarse, so normalise in float32 and cast afterwards.
    h = nn.GroupNorm(num_groups=num_groups, epsilon=1e-6, dtype=jnp.float32,
                     param_dtype=param_dtype, name=name)(x.astype(jnp.float32))
    if act:
        h = nn.swish(h)
    return h.astype(dtype)


class ResnetBlock(nn.Module):
    """Pre-activation ResNet block with an additive timestep embedding.

    ``h = conv1(swish(GN(x))) + Dense(swish(temb))``;
    ``h = conv2(dropout(swish(GN(h))))`` with ``conv2`` zero-initialised;
    returns ``shortcut(x) + h``, the shortcut a 1×1 conv when the channel count changes.
    """

    out_ch: int
    dropout: float
    num_groups: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    axis_name: str | None = None  # the device axis of the dropout masks' example indices

    @nn.compact
    def __call__(self, x: jax.Array, temb: jax.Array, *, train: bool) -> jax.Array:
        """``x: [B, H, W, C_in]``, ``temb: [B, D]`` -> ``[B, H, W, out_ch]``."""
        conv = lambda features, kernel, init, name: nn.Conv(
            features, kernel, padding="SAME", kernel_init=init, dtype=self.dtype,
            param_dtype=self.param_dtype, name=name)
        norm = lambda h, name: _norm(h, num_groups=self.num_groups, dtype=self.dtype,
                                     param_dtype=self.param_dtype, name=name)
        h = norm(x, "norm1")
        h = conv(self.out_ch, (3, 3), _default_init, "conv1")(h)
        h = h + nn.Dense(self.out_ch, kernel_init=_default_init, dtype=self.dtype,
                         param_dtype=self.param_dtype, name="temb_proj")(
            nn.swish(temb))[:, None, None, :]
        h = norm(h, "norm2")
        h = layers.ExampleDropout(self.dropout, self.axis_name)(h, deterministic=not train)
        h = conv(self.out_ch, (3, 3), _zero_init, "conv2")(h)
        if x.shape[-1] != self.out_ch:
            x = conv(self.out_ch, (1, 1), _default_init, "nin_shortcut")(x)
        return x.astype(self.dtype) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with a residual connection.

    ``q, k, v`` are 1×1 projections of ``GN(x)``; ``w = softmax(q kᵀ / √C)`` over all
    ``H·W`` positions; returns ``x + proj_out(w v)`` with ``proj_out`` zero-initialised.
    """

    num_groups: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [B, H, W, C]`` -> ``[B, H, W, C]``."""
        b, height, width, c = x.shape
        dense = lambda init, name: nn.Dense(c, kernel_init=init, dtype=self.dtype,
                                            param_dtype=self.param_dtype, name=name)
        h = _norm(x, num_groups=self.num_groups, dtype=self.dtype, param_dtype=self.param_dtype,
                  name="norm", act=False)
        h = h.reshape((b, height * width, c))
        q, k, v = (dense(_default_init, name)(h) for name in ("q", "k", "v"))
        # Logits accumulate and softmax runs in float32: bf16 logits over H·W keys lose the
        # small differences that decide the weights.
        logits = jnp.einsum("bqc,bkc->bqk", q, k, preferred_element_type=jnp.float32)
        weights = jax.nn.softmax(logits * (c ** -0.5), axis=-1).astype(self.dtype)
        h = jnp.einsum("bqk,bkc->bqc", weights, v)
        h = dense(_zero_init, "proj_out")(h)
        return x.astype(self.dtype) + h.reshape((b, height, width, c))


class UNet(nn.Module):
    """DDPM UNet ε_θ(x_t, t) (Ho et al. 2020, arXiv:2006.11239, Appendix B).

    ``conv_in`` (3×3, ``ch``) is followed by ``len(ch_mult)`` levels of ``num_res_blocks``
    ResNet blocks of width ``ch · ch_mult[i]`` (each followed by self-attention when the
    feature map's height is in ``attn_resolutions``) and a stride-2 downsampling between
    levels; a middle of ResNet, attention, ResNet; an upsampling path mirroring it with
    ``num_res_blocks + 1`` blocks per level, each taking the matching down-path activation
    concatenated on channels, and nearest-neighbour ×2 upsampling between levels; then
    GroupNorm, swish and a zero-initialised 3×3 ``conv_out``. The timestep enters through a
    sinusoidal embedding of size ``ch`` and a Dense–swish–Dense MLP of width ``4 · ch``, added
    inside every ResNet block. With ``num_classes > 0`` a class embedding (``num_classes + 1``
    rows, the last the null class ∅) is added to the output of that MLP (see the module
    docstring).

    The paper's CIFAR-10 model (35.7M parameters) is ``UNet(ch=128, ch_mult=(1, 2, 2, 2),
    num_res_blocks=2, attn_resolutions=(16,), dropout=0.1)`` on ``32×32×3`` inputs.

    Attributes:
      ch: base channel count.
      ch_mult: per-level channel multipliers; ``len(ch_mult) − 1`` downsamplings.
      num_res_blocks: ResNet blocks per level on the down path (one more on the up path).
      attn_resolutions: feature-map heights at which self-attention follows each block.
      dropout: dropout rate inside the ResNet blocks (active only with ``train=True``;
        rng stream ``"dropout"``); each example's masks are drawn from its global index
        (:class:`jaxgen.models.layers.ExampleDropout`), so they do not depend on the device
        count.
      out_ch: output channels; ``None`` means the input's channel count.
      resamp_with_conv: strided 3×3 conv to downsample and a 3×3 conv after upsampling if
        True; 2×2 average pooling and plain nearest upsampling if False.
      num_groups: GroupNorm groups; every ``ch · ch_mult[i]`` must be divisible by it.
      dtype: computation dtype (``jnp.bfloat16`` for mixed precision).
      param_dtype: parameter dtype.
      axis_name: the device axis the batch is split over (``"data"`` under data
        parallelism), for the examples' global indices in dropout; None when not mapped.
      num_classes: number of classes K to condition on; 0 (the default) is unconditional.
        When K > 0 the parameter ``class_embed/embedding`` has shape ``[K + 1, 4 · ch]`` and
        the label K is the null class ∅ (no class: the unconditional prediction for
        classifier-free guidance). The rows start N(0, 1) (flax's ``nn.Embed`` default, as
        PyTorch's ``nn.Embedding`` in Dhariwal & Nichol's code).
    """

    ch: int
    ch_mult: Sequence[int]
    num_res_blocks: int
    attn_resolutions: Sequence[int]
    dropout: float = 0.0
    out_ch: int | None = None
    resamp_with_conv: bool = True
    num_groups: int = 32
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    num_classes: int = 0
    axis_name: str | None = None

    @property
    def null_class(self) -> int:
        """The label of the null class ∅ (``num_classes``) of a class-conditional UNet."""
        if self.num_classes <= 0:
            raise ValueError("an unconditional UNet (num_classes=0) has no null class.")
        return self.num_classes

    def _check(self, x: jax.Array, t: jax.Array) -> None:
        if x.ndim != 4:
            raise ValueError(f"UNet expects images x: [B, H, W, C], got shape {tuple(x.shape)}.")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"images must be floating point, got {x.dtype}.")
        b, height, width, _ = x.shape
        factor = 2 ** (len(self.ch_mult) - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"UNet with ch_mult={tuple(self.ch_mult)} downsamples {len(self.ch_mult) - 1} "
                f"times, so H and W must be divisible by {factor}; got H={height}, W={width}."
            )
        if t.shape != (b,):
            raise ValueError(f"timesteps t must have shape [B] = ({b},), got {tuple(t.shape)}.")
        for mult in self.ch_mult:
            if (self.ch * mult) % self.num_groups:
                raise ValueError(
                    f"channel count ch * ch_mult = {self.ch} * {mult} = {self.ch * mult} is not "
                    f"divisible by num_groups={self.num_groups}."
                )
        heights = {height // 2**i for i in range(len(self.ch_mult))}
        missing = sorted(set(self.attn_resolutions) - heights)
        if missing:
            # Silently skipping attention would change the architecture without notice.
            raise ValueError(
                f"attn_resolutions {missing} never occur for input height {height}; the "
                f"feature-map heights are {sorted(heights, reverse=True)}."
            )

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        """Predict the noise in ``x``.

        Args:
          x: noisy images ``x_t: [B, H, W, C]``, H and W divisible by ``2 ** (len(ch_mult)-1)``.
          t: timesteps ``[B]`` (integers in ``[0, T)``).
          y: class labels ``int [B]`` in ``[0, num_classes]`` (``num_classes`` is the null
            class ∅: unconditional); required when ``num_classes > 0``, an error otherwise.
            Out-of-range labels are an error when their values are known (outside ``jit``);
            traced ones look up NaN rows (``jnp.take``'s fill mode).
          train: enables dropout (needs an rng stream ``"dropout"``).

        Returns:
          ``eps: [B, H, W, out_ch]`` float32.
        """
        self._check(x, t)
        y = labels.check_labels(y, num_classes=self.num_classes, batch_shape=(x.shape[0],),
                                owner="UNet", null_class=True)
        out_ch = x.shape[-1] if self.out_ch is None else self.out_ch
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        block = lambda ch, name: ResnetBlock(ch, self.dropout, self.num_groups, name=name,
                                             axis_name=self.axis_name, **kw)
        attn = lambda name: AttnBlock(self.num_groups, name=name, **kw)
        conv3 = lambda features, name, init=_default_init, strides=1, conv=layers.Conv: conv(
            features, (3, 3), strides=strides, padding="SAME", kernel_init=init, name=name, **kw)

        temb = timestep_embedding(t, self.ch)
        temb = nn.Dense(4 * self.ch, kernel_init=_default_init, name="temb_dense0", **kw)(temb)
        temb = nn.Dense(4 * self.ch, kernel_init=_default_init, name="temb_dense1", **kw)(
            nn.swish(temb))
        if y is not None:
            # K + 1 rows: the K classes, then the null class ∅ (label K).
            temb = temb + nn.Embed(self.num_classes + 1, 4 * self.ch, name="class_embed",
                                   **kw)(y)

        num_levels = len(self.ch_mult)
        hs = [conv3(self.ch, "conv_in")(x)]
        for i, mult in enumerate(self.ch_mult):
            for j in range(self.num_res_blocks):
                h = block(self.ch * mult, f"down_{i}_block_{j}")(hs[-1], temb, train=train)
                if h.shape[1] in self.attn_resolutions:
                    h = attn(f"down_{i}_attn_{j}")(h)
                hs.append(h)
            if i != num_levels - 1:
                h = hs[-1]
                if self.resamp_with_conv:
                    h = conv3(h.shape[-1], f"down_{i}_downsample", strides=2)(h)
                else:
                    h = nn.avg_pool(h, (2, 2), strides=(2, 2))
                hs.append(h)

        h = hs[-1]
        h = block(h.shape[-1], "mid_block_1")(h, temb, train=train)
        h = attn("mid_attn_1")(h)
        h = block(h.shape[-1], "mid_block_2")(h, temb, train=train)

        for i in reversed(range(num_levels)):
            for j in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, hs.pop()], axis=-1)
                h = block(self.ch * self.ch_mult[i], f"up_{i}_block_{j}")(h, temb, train=train)
                if h.shape[1] in self.attn_resolutions:
                    h = attn(f"up_{i}_attn_{j}")(h)
            if i != 0:
                if self.resamp_with_conv:  # ×2 nearest, then a 3×3 conv: fused on CPUs
                    h = conv3(h.shape[-1], f"up_{i}_upsample", conv=layers.UpsampleConv)(h)
                else:
                    h = layers.upsample_nearest(h, 2)
        assert not hs, "every down-path activation is consumed by one up-path block"

        h = _norm(h, num_groups=self.num_groups, dtype=self.dtype, param_dtype=self.param_dtype,
                  name="norm_out")
        h = conv3(out_ch, "conv_out", init=_zero_init)(h)
        return h.astype(jnp.float32)
