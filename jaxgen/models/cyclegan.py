"""CycleGAN's ResNet generator and 70×70 PatchGAN discriminator (flax.linen, NHWC).

Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", 2017 (arXiv:1703.10593). The layers follow the authors' reference
implementation (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``:
``ResnetGenerator``, ``ResnetBlock``, ``NLayerDiscriminator``) with its CycleGAN defaults:
instance normalization without affine parameters or running statistics, reflection padding,
no dropout, every convolution with a bias, weights drawn from N(0, 0.02²).

Modules map images to images (or patch logits); the cycle, identity and adversarial losses
live in :mod:`jaxgen.math`. Neither module has ``batch_stats`` or any other mutable
collection, and neither needs a PRNG key to apply.

Shapes: images ``x: [B, H, W, C]`` in [-1, 1]; the generator returns ``[B, H, W,
out_channels]`` in [-1, 1], the discriminator a patch map ``[B, H', W', 1]`` of raw scores.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import validation
from jaxgen.models import layers

# The reference's init_type='normal', init_gain=0.02; biases start at zero.
KERNEL_INIT = nn.initializers.normal(stddev=0.02)

# PyTorch ConvTranspose2d(kernel 3, stride 2, padding 1, output_padding 1) as padding of the
# stride-dilated input: k − 1 − padding before, k − 1 − padding + output_padding after, so
# the output size is exactly 2H. (Kernels ported from PyTorch must be flipped spatially.)
_UPSAMPLE_PADDING = ((1, 2), (1, 2))


def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Mirror-pad H and W without repeating the edge, like PyTorch's ``ReflectionPad2d``."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _instance_norm(dtype) -> nn.InstanceNorm:
    # Reference default norm='instance': affine=False, no running statistics, eps 1e-5,
    # biased variance. Two-pass variance keeps float32 close to PyTorch on large activations.
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False,
                           use_fast_variance=False, dtype=dtype)


def _check_images(name: str, x: jax.Array) -> None:
    validation.check_rank(name, x, 4, "B, H, W, C")
    validation.check_floating(name, x)


def _upsample_conv(features: int, *, dtype=jnp.float32, name: str | None = None
                  ) -> layers.ConvTranspose:
    """3×3 stride-2 transposed convolution that exactly doubles H and W.

    Equivalent to PyTorch's ``ConvTranspose2d(c_in, features, kernel_size=3, stride=2,
    padding=1, output_padding=1)`` with the kernel flipped in H and W; the kernel has shape
    ``[3, 3, c_in, features]``.
    """
    return layers.ConvTranspose(features, (3, 3), strides=(2, 2), padding=_UPSAMPLE_PADDING,
                            kernel_init=KERNEL_INIT, dtype=dtype, name=name)


class ResnetBlock(nn.Module, kw_only=True):
    """Residual block ``x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))`` at constant width.

    Both convolutions are 3×3 with reflection padding 1, so H, W and the channel count
    ``features`` are preserved. Input ``[B, H, W, features]`` with H, W ≥ 2.
    """

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=KERNEL_INIT,
                    dtype=self.dtype, name="conv_0")(_reflect_pad(x, 1))
        h = nn.relu(_instance_norm(self.dtype)(h))
        h = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=KERNEL_INIT,
                    dtype=self.dtype, name="conv_1")(_reflect_pad(h, 1))
        return x + _instance_norm(self.dtype)(h)


class ResnetGenerator(nn.Module, kw_only=True):
    """CycleGAN's ResNet generator (Johnson et al. 2016, as in Zhu et al. 2017, arXiv:1703.10593).

    ``c7s1-f, d2f, d4f, R4f × num_blocks, u2f, uf, c7s1-out_channels`` in the paper's
    notation (f = ``features``): a 7×7 convolution after reflection padding 3; two 3×3
    stride-2 convolutions; ``num_blocks`` :class:`ResnetBlock` s at width 4f; two 3×3
    stride-2 transposed convolutions; a 7×7 convolution after reflection padding 3 and tanh.
    Each hidden convolution is followed by instance normalization and ReLU. With the
    defaults (9 blocks, f = 64, 3 → 3 channels) it has 11,378,179 parameters, as the
    reference ``resnet_9blocks`` does.

    Attributes:
      num_blocks: residual blocks at the bottleneck (9 at 256×256, 6 at 128×128).
      features: f, the width of the first layer (``ngf``); the bottleneck has 4f channels.
      out_channels: channels of the output image.
      dtype: computation dtype (parameters stay float32).

    Call with ``x: [B, H, W, C]`` (any C), H and W divisible by 4 and at least 8; returns
    ``[B, H, W, out_channels]`` in [-1, 1].
    """

    num_blocks: int = 9
    features: int = 64
    out_channels: int = 3
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _check_images("ResnetGenerator input", x)
        height, width = x.shape[1:3]
        if height % 4 or width % 4 or height < 8 or width < 8:
            raise ValueError(
                "ResnetGenerator downsamples twice and reflection-pads the 4× smaller map, so "
                f"H and W must be divisible by 4 and at least 8; got H={height}, W={width}. "
                "Resize or crop the images (CycleGAN trains on 256×256 crops)."
            )
        if self.num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {self.num_blocks}.")
        f = self.features
        norm = lambda: _instance_norm(self.dtype)

        h = nn.Conv(f, (7, 7), padding="VALID", kernel_init=KERNEL_INIT, dtype=self.dtype,
                    name="stem")(_reflect_pad(x, 3))
        h = nn.relu(norm()(h))
        for i, width_out in enumerate((2 * f, 4 * f)):
            h = layers.Conv(width_out, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                            kernel_init=KERNEL_INIT, dtype=self.dtype, name=f"down_{i}")(h)
            h = nn.relu(norm()(h))
        for i in range(self.num_blocks):
            h = ResnetBlock(features=4 * f, dtype=self.dtype, name=f"block_{i}")(h)
        for i, width_out in enumerate((2 * f, f)):
            h = _upsample_conv(width_out, dtype=self.dtype, name=f"up_{i}")(h)
            h = nn.relu(norm()(h))
        h = nn.Conv(self.out_channels, (7, 7), padding="VALID", kernel_init=KERNEL_INIT,
                    dtype=self.dtype, name="head")(_reflect_pad(h, 3))
        return jnp.tanh(h)


def patch_output_size(size: int, *, num_layers: int = 3) -> int:
    """Side of the patch map that :class:`PatchDiscriminator` returns for an input side.

    ``num_layers`` 4×4 stride-2 convolutions with padding 1 (⌊(s − 2)/2⌋ + 1 each), then
    two 4×4 stride-1 ones with padding 1 (s − 1 each): 256 → 30, 128 → 14, 32 → 2.
    """
    for _ in range(num_layers):
        size = (size - 2) // 2 + 1
    return size - 2


class PatchDiscriminator(nn.Module, kw_only=True):
    """70×70 PatchGAN discriminator (Isola et al. 2017; Zhu et al. 2017, arXiv:1703.10593).

    ``C64-C128-C256-C512`` then a 1-channel convolution, all 4×4 with padding 1: the first
    ``num_layers`` are stride 2, the last two stride 1; widths are ``features · min(2ⁿ, 8)``.
    Every hidden convolution is followed by LeakyReLU(0.2), with instance normalization in
    between except after the first. The output is a map of raw scores, one per overlapping
    input patch (no sigmoid: pair it with a least-squares or from-logits loss). With the
    defaults it has 2,764,737 parameters and maps 256×256 to 30×30 patches, each seeing a
    70×70 receptive field.

    Attributes:
      features: width of the first layer (``ndf``).
      num_layers: stride-2 convolutions (3 gives the 70×70 receptive field).
      dtype: computation dtype (parameters stay float32).

    Call with ``x: [B, H, W, C]`` (any C) large enough for a non-empty patch map (see
    :func:`patch_output_size`); returns ``[B, H', W', 1]``.
    """

    features: int = 64
    num_layers: int = 3
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _check_images("PatchDiscriminator input", x)
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}.")
        height, width = x.shape[1:3]
        out_h = patch_output_size(height, num_layers=self.num_layers)
        out_w = patch_output_size(width, num_layers=self.num_layers)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"PatchDiscriminator(num_layers={self.num_layers}) needs larger images: "
                f"H={height}, W={width} give an empty {out_h}×{out_w} patch map "
                "(at least 24×24 for num_layers=3)."
            )
        conv = lambda width_out, stride, name: layers.Conv(
            width_out, (4, 4), strides=(stride, stride), padding=((1, 1), (1, 1)),
            kernel_init=KERNEL_INIT, dtype=self.dtype, name=name)

        h = nn.leaky_relu(conv(self.features, 2, "conv_0")(x), negative_slope=0.2)
        for n in range(1, self.num_layers + 1):
            # The last hidden layer keeps the resolution to widen the receptive field.
            stride = 2 if n < self.num_layers else 1
            h = conv(self.features * min(2**n, 8), stride, f"conv_{n}")(h)
            h = nn.leaky_relu(_instance_norm(self.dtype)(h), negative_slope=0.2)
        return conv(1, 1, "head")(h)
