"""Encoders, decoders, the autoencoder and the variational autoencoder (flax.linen).

Modules map inputs to outputs and nothing else: losses live in :mod:`jaxgen.math`, and the
VAE's sampling uses the pure :func:`jaxgen.math.reparameterize` on an explicit key.

Shapes: images ``x: [B, H, W, C]``; codes ``z: [B, D]``. Decoders return unnormalised
outputs ``[B, H, W, C]``: logits for a Bernoulli (BCE) decoder, means for a squared-error one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.math import reparameterize
from jaxgen.models import layers

DENSE_INITS = ("lecun", "torch")


def dense(features: int, fan_in: int, init: str) -> nn.Dense:
    """A Dense layer with flax's default init (``"lecun"``: truncated-normal kernel of variance
    1/fan_in, zero bias) or PyTorch's ``nn.Linear`` default (``"torch"``: kernel and bias
    uniform on ±1/√fan_in, i.e. Kaiming-uniform with a = √5), as the classic reference uses."""
    if init == "lecun":
        return nn.Dense(features)
    if init != "torch":
        raise ValueError(f"unknown init {init!r}; choose one of {DENSE_INITS}.")
    bound = 1.0 / math.sqrt(fan_in)

    def bias_init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
    return nn.Dense(features, kernel_init=kernel_init, bias_init=bias_init)


class MLPEncoder(nn.Module):
    """Flatten, then Dense+ReLU layers, then a linear layer of ``features`` outputs."""

    hidden: Sequence[int]
    features: int
    init: str = "lecun"  # see `dense`

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            h = nn.relu(dense(width, h.shape[-1], self.init)(h))
        return dense(self.features, h.shape[-1], self.init)(h)


class MLPDecoder(nn.Module):
    """Dense+ReLU layers, then a linear layer reshaped to ``image_shape``."""

    hidden: Sequence[int]
    image_shape: Sequence[int]
    init: str = "lecun"  # see `dense`

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for width in self.hidden:
            h = nn.relu(dense(width, h.shape[-1], self.init)(h))
        h = dense(math.prod(self.image_shape), h.shape[-1], self.init)(h)
        return h.reshape((z.shape[0], *self.image_shape))


class ConvEncoder(nn.Module):
    """Strided 4×4 convolutions (each halves H and W) with ReLU, then a linear layer."""

    channels: Sequence[int]
    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for ch in self.channels:
            h = nn.relu(layers.Conv(ch, (4, 4), strides=(2, 2), padding="SAME")(h))
        return nn.Dense(self.features)(h.reshape((h.shape[0], -1)))


class ConvDecoder(nn.Module):
    """A linear layer to a small feature map, then strided transposed convolutions.

    ``channels`` lists the transposed convolutions' widths from coarse to fine; each doubles
    H and W, so H and W of ``image_shape`` must be divisible by ``2 ** len(channels)``.
    """

    channels: Sequence[int]
    image_shape: Sequence[int]

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h_out, w_out, c_out = self.image_shape
        factor = 2 ** len(self.channels)
        if h_out % factor or w_out % factor:
            raise ValueError(
                f"ConvDecoder with {len(self.channels)} upsamplings needs H and W divisible by "
                f"{factor}, got image_shape {tuple(self.image_shape)}."
            )
        h0, w0 = h_out // factor, w_out // factor
        h = nn.relu(nn.Dense(h0 * w0 * self.channels[0])(z))
        h = h.reshape((z.shape[0], h0, w0, self.channels[0]))
        for ch in self.channels[1:]:
            h = nn.relu(layers.ConvTranspose(ch, (4, 4), strides=(2, 2), padding="SAME")(h))
        return layers.ConvTranspose(c_out, (4, 4), strides=(2, 2), padding="SAME")(h)


def _check_images(x: jax.Array, image_shape: Sequence[int]) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"expected images of shape [B, {', '.join(map(str, image_shape))}], got "
            f"{tuple(x.shape)}; reshape the batch or set the model's image_shape."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"images must be floating point (e.g. uint8 / 255), got {x.dtype}.")


class Autoencoder(nn.Module):
    """Deterministic autoencoder ``x → z = enc(x) → dec(z)``.

    ``encode`` is the feature-extraction / compression API:
    ``model.apply(params, x, method=Autoencoder.encode)``.
    """

    encoder: nn.Module
    decoder: nn.Module
    image_shape: Sequence[int]

    def encode(self, x: jax.Array) -> jax.Array:
        """Codes ``z: [B, D]`` of images ``x: [B, H, W, C]``."""
        _check_images(x, self.image_shape)
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        """Decoder outputs ``[B, H, W, C]`` (logits or means) for codes ``z: [B, D]``."""
        return self.decoder(z)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))


class VAE(nn.Module):
    """Variational autoencoder with a diagonal-Gaussian encoder q(z|x) and prior N(0, I).

    The encoder predicts ``2·latent_dim`` numbers, split into the mean and log-variance.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    image_shape: Sequence[int]

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mean and log-variance of q(z|x), each ``[B, latent_dim]``."""
        _check_images(x, self.image_shape)
        h = self.encoder(x)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode(self, z: jax.Array) -> jax.Array:
        """Decoder outputs ``[..., H, W, C]`` for codes ``z: [..., latent_dim]``."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape((-1, self.latent_dim)))
        return out.reshape((*lead, *out.shape[1:]))

    def __call__(self, x: jax.Array, key: jax.Array):
        """Reconstruct ``x`` through one sample ``z ~ q(z|x)`` drawn from ``key``.

        Returns:
          ``(outputs [B, H, W, C], mean [B, D], logvar [B, D])``.
        """
        mean, logvar = self.encode(x)
        z = reparameterize(key, mean, logvar)
        return self.decode(z), mean, logvar


def make_autoencoder(
    *,
    architecture: str,
    image_shape: Sequence[int],
    latent_dim: int,
    variational: bool,
    hidden: Sequence[int] = (400,),
    channels: Sequence[int] = (32, 64),
    init: str = "lecun",
) -> Autoencoder | VAE:
    """Build an (variational) autoencoder.

    Args:
      architecture: ``"mlp"`` (Dense layers of widths ``hidden``) or ``"conv"`` (strided
        convolutions of widths ``channels``, mirrored in the decoder).
      image_shape: ``(H, W, C)``.
      latent_dim: size of the code z.
      variational: a :class:`VAE` if True, else an :class:`Autoencoder`.
      init: Dense-layer initialisation of the MLP, ``"lecun"`` (flax) or ``"torch"`` (see
        :func:`dense`).
    """
    if init not in DENSE_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {DENSE_INITS}.")
    features = 2 * latent_dim if variational else latent_dim
    if architecture == "mlp":
        encoder = MLPEncoder(hidden=tuple(hidden), features=features, init=init)
        decoder = MLPDecoder(hidden=tuple(reversed(hidden)), image_shape=tuple(image_shape),
                             init=init)
    elif architecture == "conv":
        encoder = ConvEncoder(channels=tuple(channels), features=features)
        decoder = ConvDecoder(channels=tuple(reversed(channels)), image_shape=tuple(image_shape))
    else:
        raise ValueError(f"unknown architecture {architecture!r}; choose 'mlp' or 'conv'.")
    if variational:
        return VAE(encoder=encoder, decoder=decoder, latent_dim=latent_dim,
                   image_shape=tuple(image_shape))
    return Autoencoder(encoder=encoder, decoder=decoder, image_shape=tuple(image_shape))
