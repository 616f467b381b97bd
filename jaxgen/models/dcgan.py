"""DCGAN generator and discriminator (flax.linen, NHWC).

Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", arXiv:1511.06434. At 64×64 the layers, widths, paddings and
initialisation are those of the PyTorch DCGAN example (3,576,704 generator and 2,765,568
discriminator parameters for latent 100, 64 features, 3 channels); other power-of-two sizes
drop or add one stride-2 stage per factor of two (32×32: ngf·4 4×4 → ngf·2 8×8 → ngf 16×16 →
channels 32×32).

Both modules hold BatchNorm, so they are applied with their batch statistics::

    variables = gen.init(key, z, train=False)        # {"params", "batch_stats"}
    images, updates = gen.apply(variables, z, train=True, mutable=["batch_stats"])
    variables = {"params": ..., "batch_stats": updates["batch_stats"]}
    images = gen.apply(variables, z, train=False)     # running averages, nothing mutated

With ``axis_name="data"`` and the step run under ``jax.shard_map`` / ``jax.pmap`` over that
axis, the batch mean and variance are averaged over the global batch (``lax.pmean``), so the
output and the updated running statistics match one device on the global batch.

Class conditioning (``num_classes = K > 0``; 0, the default, is exactly the unconditional
model: same parameters, same outputs). Both networks then take labels ``y: int [B]`` in
``[0, K)``, keyword-only like ``train`` (``gen.apply(v, z, y=labels, train=True)``):

- the generator's every BatchNorm becomes a *conditional* BatchNorm
  (:class:`ConditionalBatchNorm`; de Vries et al. 2017, arXiv:1707.00683, as in Miyato &
  Koyama 2018): the same normalisation and running statistics, without an affine of its own,
  followed by a per-class scale and shift ``γ[y], β[y]`` (tables ``[K, C]``, initialised to
  exactly 1 and 0, where the unconditional γ follows the reference's N(1, 0.02²)). The label
  enters the generator only there.
- the discriminator is a *projection discriminator* (Miyato & Koyama 2018,
  arXiv:1802.05637): ``f(x, y) = ψ(h(x)) + ⟨embed(y), φ(x)⟩``, with ``h(x)`` the last
  feature map (``[B, 4, 4, ndf·2^(n−1)]``, after its LeakyReLU), ψ the existing final 4×4
  convolution to one logit, ``φ(x) = Σ_{i,j} h(x)_{ij}`` its *global sum pooling* (as in the
  authors' code) and ``embed`` a table ``class_embed/embedding: [K, ndf·2^(n−1)]``
  initialised N(0, 0.02²) like the convolutions. φ(x) is sown as
  ``intermediates/features`` and the projection term as ``intermediates/projection``
  (apply with ``mutable=["intermediates"]`` to read them).

Known small differences from PyTorch: the running variance is updated with the biased batch
variance (PyTorch uses the unbiased one), and kernels are stored HWIO rather than OIHW.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import labels, layers

__all__ = ["ConditionalBatchNorm", "Discriminator", "Generator"]

# DCGAN reference initialisation: every conv weight ~ N(0, 0.02²); BatchNorm γ ~ N(1, 0.02²),
# β = 0.
_conv_init = nn.initializers.normal(stddev=0.02)


def _bn_scale_init(key: jax.Array, shape, dtype: Any = jnp.float32) -> jax.Array:
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _num_stages(image_size: int, owner: str) -> int:
    """Number of stride-2 stages between the 4×4 map and the image: log2(image_size) − 2."""
    if (
        not isinstance(image_size, int)
        or image_size < 16
        or image_size & (image_size - 1)
    ):
        raise ValueError(
            f"{owner} image_size must be a power of two ≥ 16 (DCGAN uses 32 or 64), got "
            f"{image_size!r}; pad or resize the images (e.g. 28×28 Fashion-MNIST → 32×32)."
        )
    return image_size.bit_length() - 3


def _batch_norm(module: nn.Module, train: bool) -> nn.BatchNorm:
    # PyTorch's momentum 0.1 weights the new batch; flax's momentum weights the old average.
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=module.axis_name,
        scale_init=_bn_scale_init,
        dtype=module.dtype,
    )


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine, then a per-class scale and shift.

    ``out = γ[y] · BN(x) + β[y]`` with ``γ, β: [num_classes, C]`` (parameters ``scale`` and
    ``bias``, initialised to 1 and 0), so freshly initialised it is the plain normalisation.
    The normalisation is that of the DCGAN's BatchNorm (momentum, ε, ``axis_name`` and the
    ``use_running_average`` rule are the same): its running ``mean`` and ``var`` are this
    module's ``batch_stats``, beside the parameters ``scale`` and ``bias``.

    Attributes:
      num_classes: K, the number of rows of the scale and shift tables (> 0).
      use_running_average: normalise with the running statistics (evaluation) if True, with
        the batch's (training; apply with ``mutable=["batch_stats"]``) if False.
      momentum, epsilon, axis_name, dtype: as ``flax.linen.BatchNorm``'s.
    """

    num_classes: int
    use_running_average: bool
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """``x: [B, ..., C]``, labels ``y: int [B]`` in ``[0, num_classes)`` -> ``[B, ..., C]``."""
        norm = nn.BatchNorm(use_running_average=self.use_running_average,
                            momentum=self.momentum, epsilon=self.epsilon,
                            axis_name=self.axis_name, use_scale=False, use_bias=False,
                            dtype=self.dtype)
        nn.share_scope(self, norm)  # its mean and var live here, beside scale and bias
        h = norm(x)
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones_init(), (self.num_classes, c))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.num_classes, c))
        expand = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
        gamma = jnp.take(scale, y, axis=0).reshape(expand).astype(h.dtype)
        beta = jnp.take(bias, y, axis=0).reshape(expand).astype(h.dtype)
        return h * gamma + beta


def _conditional_batch_norm(module: nn.Module, train: bool) -> ConditionalBatchNorm:
    return ConditionalBatchNorm(num_classes=module.num_classes, use_running_average=not train,
                                momentum=0.9, epsilon=1e-5, axis_name=module.axis_name,
                                dtype=module.dtype)


class Generator(nn.Module):
    """DCGAN generator: latent codes ``z: [B, latent_dim]`` → images ``[B, S, S, channels]``.

    Layers (S = 64, ngf = ``features``): a 4×4 transposed convolution of the code (seen as a
    1×1 map) to ngf·8 channels, then stride-2 4×4 transposed convolutions to ngf·4 (8×8),
    ngf·2 (16×16), ngf (32×32) and ``channels`` (64×64); BatchNorm + ReLU after every layer
    but the last, which is followed by tanh. No biases (BatchNorm's β takes their place).
    With ``num_classes > 0`` every BatchNorm is a :class:`ConditionalBatchNorm` on the
    labels (the only place where they enter).

    Attributes:
      latent_dim: size of z (nz).
      features: ngf, the width of the last hidden layer; earlier layers double it.
      channels: image channels (nc), e.g. 1 or 3.
      image_size: S, a power of two ≥ 16 (the reference uses 64; 32 drops the ngf·8 stage).
      axis_name: the device axis to average batch statistics over (``"data"`` under data
        parallelism), or None when not mapped.
      dtype: computation dtype; parameters stay float32.
      num_classes: K, the number of classes to condition on; 0 (the default) is
        unconditional. With K > 0 the BatchNorms ``BatchNorm_i`` become
        ``ConditionalBatchNorm_i`` with ``scale`` and ``bias`` of shape ``[K, C]`` (and the
        same ``batch_stats``).
    """

    latent_dim: int = 100
    features: int = 64
    channels: int = 3
    image_size: int = 64
    axis_name: str | None = None
    dtype: Any = jnp.float32
    num_classes: int = 0

    @nn.compact
    def __call__(self, z: jax.Array, *, y: jax.Array | None = None,
                 train: bool) -> jax.Array:
        """Generate images.

        Args:
          z: latent codes ``[B, latent_dim]``, floating (typically N(0, I)).
          y: class labels ``int [B]`` in ``[0, num_classes)``; required when
            ``num_classes > 0``, an error otherwise. Out-of-range labels are an error when
            their values are known (outside ``jit``); traced ones give NaN images.
          train: use and update batch statistics (apply with ``mutable=["batch_stats"]``)
            if True, else the running averages.

        Returns:
          Images ``[B, image_size, image_size, channels]`` in [−1, 1] (tanh), in ``dtype``.
        """
        stages = _num_stages(self.image_size, "Generator")
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"Generator expects latent codes of shape [B, {self.latent_dim}], got "
                f"{tuple(z.shape)}; draw z with shape (batch, latent_dim)."
            )
        if not jnp.issubdtype(z.dtype, jnp.floating):
            raise TypeError(f"latent codes must be floating point, got {z.dtype}.")
        y = labels.check_labels(y, num_classes=self.num_classes, batch_shape=(z.shape[0],),
                                owner="Generator")

        def norm(h: jax.Array) -> jax.Array:
            if y is None:
                return _batch_norm(self, train)(h)
            return _conditional_batch_norm(self, train)(h, y)

        conv = dict(kernel_size=(4, 4), use_bias=False, kernel_init=_conv_init, dtype=self.dtype)
        # PyTorch ConvTranspose2d padding p corresponds to lax padding k − 1 − p per side:
        # p = 0 (first layer, 1×1 → 4×4) gives 3, p = 1 (each ×2 stage) gives 2.
        width = self.features * 2 ** (stages - 1)
        h = z.reshape((z.shape[0], 1, 1, self.latent_dim))
        h = layers.ConvTranspose(width, strides=(1, 1), padding=((3, 3), (3, 3)), **conv)(h)
        h = nn.relu(norm(h))
        for _ in range(stages - 1):
            width //= 2
            h = layers.ConvTranspose(width, strides=(2, 2), padding=((2, 2), (2, 2)), **conv)(h)
            h = nn.relu(norm(h))
        h = layers.ConvTranspose(self.channels, strides=(2, 2), padding=((2, 2), (2, 2)),
                                 **conv)(h)
        return jnp.tanh(h)


class Discriminator(nn.Module):
    """DCGAN discriminator: images ``[B, S, S, C]`` → logits ``[B]`` (no sigmoid).

    Layers (S = 64, ndf = ``features``): stride-2 4×4 convolutions (padding 1) to ndf (32×32),
    ndf·2 (16×16), ndf·4 (8×8) and ndf·8 (4×4), each followed by LeakyReLU(0.2), with
    BatchNorm before the activation on all but the first; then a 4×4 valid convolution to one
    logit. No biases. The logit feeds the losses in :mod:`jaxgen.math.adversarial`.
    With ``num_classes > 0`` it is a projection discriminator: the logit gains
    ``⟨embed(y), φ(x)⟩``, φ(x) the global *sum* pooling of the last feature map (the final
    convolution's input), see the module docstring.

    Attributes:
      features: ndf, the width of the first layer; later layers double it.
      image_size: S, a power of two ≥ 16 (the reference uses 64; 32 drops the ndf·8 stage).
      axis_name: the device axis to average batch statistics over (``"data"`` under data
        parallelism), or None when not mapped.
      dtype: computation dtype; parameters stay float32 and the logits are returned in
        float32 so that the losses are computed in full precision.
      num_classes: K, the number of classes to condition on; 0 (the default) is
        unconditional. With K > 0 the parameter ``class_embed/embedding`` has shape
        ``[K, features · 2^(n−1)]`` (n the number of stride-2 convolutions).
    """

    features: int = 64
    image_size: int = 64
    axis_name: str | None = None
    dtype: Any = jnp.float32
    num_classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, *, y: jax.Array | None = None,
                 train: bool) -> jax.Array:
        """Score images.

        Args:
          x: images ``[B, image_size, image_size, C]`` in [−1, 1], floating; any C.
          y: class labels ``int [B]`` in ``[0, num_classes)``; required when
            ``num_classes > 0``, an error otherwise. Out-of-range labels are an error when
            their values are known (outside ``jit``); traced ones give NaN logits.
          train: use and update batch statistics (apply with ``mutable=["batch_stats"]``)
            if True, else the running averages.

        Returns:
          Logits ``[B]`` in float32: D(x) before the sigmoid.
        """
        stages = _num_stages(self.image_size, "Discriminator")
        s = self.image_size
        if x.ndim != 4 or x.shape[1:3] != (s, s):
            raise ValueError(
                f"Discriminator expects images of shape [B, {s}, {s}, C], got "
                f"{tuple(x.shape)}; resize the images or set image_size."
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"images must be floating point in [-1, 1] (e.g. uint8 / 127.5 − 1), got "
                f"{x.dtype}."
            )
        y = labels.check_labels(y, num_classes=self.num_classes, batch_shape=(x.shape[0],),
                                owner="Discriminator")

        conv = dict(kernel_size=(4, 4), use_bias=False, kernel_init=_conv_init, dtype=self.dtype)
        h = x
        for i in range(stages):
            h = layers.Conv(self.features * 2**i, strides=(2, 2), padding=((1, 1), (1, 1)),
                            **conv)(h)
            if i > 0:
                h = _batch_norm(self, train)(h)
            h = nn.leaky_relu(h, negative_slope=0.2)
        logit = nn.Conv(1, strides=(1, 1), padding="VALID", **conv)(h)  # ψ: [B, 1, 1, 1]
        logit = logit.reshape((logit.shape[0],)).astype(jnp.float32)
        if y is None:
            return logit
        # φ(x): global sum pooling of ψ's input (Miyato & Koyama's choice), in float32.
        phi = jnp.sum(h.astype(jnp.float32), axis=(1, 2))  # [B, ndf·2^(n−1)]
        embed = nn.Embed(self.num_classes, phi.shape[-1], embedding_init=_conv_init,
                         name="class_embed")(y)  # float32
        projection = jnp.sum(embed * phi, axis=-1)
        self.sow("intermediates", "features", phi)
        self.sow("intermediates", "projection", projection)
        return logit + projection
