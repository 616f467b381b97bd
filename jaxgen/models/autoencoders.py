"""Encoders, decoders, the autoencoder and the variational autoencoder (flax.linen).

Modules map inputs to outputs and nothing else: losses live in :mod:`jaxgen.math`, and the
VAE's sampling uses the pure :func:`jaxgen.math.reparameterize` on an explicit key.

Shapes: images ``x: [B, H, W, C]``; codes ``z: [B, D]``. Decoders return unnormalised
outputs ``[B, H, W, C]``: logits for a Bernoulli (BCE) decoder, means for a squared-error one.

Class conditioning (``num_classes = K > 0``; 0, the default, is exactly the unconditional
model): the conditional VAE of Sohn, Lee & Yan 2015 ("Learning Structured Output
Representation using Deep Conditional Generative Models", NeurIPS), q(z|x, y) and p(x|z, y)
with the prior N(0, I), and likewise a conditional deterministic autoencoder. Both the encoder
and the decoder see the label ``y: int [B]`` in ``[0, K)`` as a *one-hot* vector (no learned
embedding, so no new parameters beyond the wider first layers):

- MLP: the one-hot is concatenated to the flattened image (encoder) and to the code z
  (decoder), widening each first Dense layer's input by K;
- conv: the encoder takes the one-hot broadcast over H and W as K extra input channels (the
  first convolution's kernel is ``[4, 4, C + K, ·]``); the decoder concatenates it to z before
  its first Dense layer.

Labels out of range are an error when their values are known (outside ``jit``); traced ones
would get an all-zero one-hot vector. ``make_autoencoder(..., num_classes=K)`` builds the
conditional models; they are applied as ``model.apply(v, x, key, y)`` (VAE) or
``model.apply(v, x, y)``, with ``encode(x, y)`` and ``decode(z, y)`` as methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.math import reparameterize
from jaxgen.models import labels, layers

DENSE_INITS = ("lecun", "torch")


def dense(features: int, fan_in: int, init: str, dtype: Any = None) -> nn.Dense:
    """A Dense layer with flax's default init (``"lecun"``: truncated-normal kernel of variance
    1/fan_in, zero bias) or PyTorch's ``nn.Linear`` default (``"torch"``: kernel and bias
    uniform on ±1/√fan_in, i.e. Kaiming-uniform with a = √5), as the classic reference uses;
    `dtype`: its computation dtype (None: its inputs'; parameters stay float32)."""
    if init == "lecun":
        return nn.Dense(features, dtype=dtype)
    if init != "torch":
        raise ValueError(f"unknown init {init!r}; choose one of {DENSE_INITS}.")
    bound = 1.0 / math.sqrt(fan_in)

    def bias_init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
    return nn.Dense(features, kernel_init=kernel_init, bias_init=bias_init, dtype=dtype)


def _one_hot(y: jax.Array | None, num_classes: int, batch: int, owner: str,
             dtype) -> jax.Array | None:
    """Checked labels ``[B]`` as one-hot rows ``[B, num_classes]`` (None when unconditional)."""
    y = labels.check_labels(y, num_classes=num_classes, batch_shape=(batch,), owner=owner)
    return None if y is None else jax.nn.one_hot(y, num_classes, dtype=dtype)


def _output_dtype(dtype) -> jnp.dtype:
    """The output layers' computation dtype: float32, or `dtype` where it is wider."""
    return jnp.promote_types(dtype, jnp.float32)


class MLPEncoder(nn.Module):
    """Flatten, then Dense+ReLU layers, then a linear layer of ``features`` outputs.

    With ``num_classes = K > 0`` the one-hot label ``[B, K]`` is concatenated to the
    flattened input.
    """

    hidden: Sequence[int]
    features: int
    init: str = "lecun"  # see `dense`
    num_classes: int = 0
    dtype: Any = jnp.float32  # hidden layers' computation dtype (see make_autoencoder)

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        h = x.reshape((x.shape[0], -1)).astype(self.dtype)
        one_hot = _one_hot(y, self.num_classes, x.shape[0], "MLPEncoder", h.dtype)
        if one_hot is not None:
            h = jnp.concatenate([h, one_hot], axis=-1)
        for width in self.hidden:
            h = nn.relu(dense(width, h.shape[-1], self.init, self.dtype)(h))
        return dense(self.features, h.shape[-1], self.init, _output_dtype(self.dtype))(h)


class MLPDecoder(nn.Module):
    """Dense+ReLU layers, then a linear layer reshaped to ``image_shape``.

    With ``num_classes = K > 0`` the one-hot label ``[B, K]`` is concatenated to z.
    """

    hidden: Sequence[int]
    image_shape: Sequence[int]
    init: str = "lecun"  # see `dense`
    num_classes: int = 0
    dtype: Any = jnp.float32  # hidden layers' computation dtype (see make_autoencoder)

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array | None = None) -> jax.Array:
        h = z.astype(self.dtype)
        one_hot = _one_hot(y, self.num_classes, z.shape[0], "MLPDecoder", h.dtype)
        if one_hot is not None:
            h = jnp.concatenate([h, one_hot], axis=-1)
        for width in self.hidden:
            h = nn.relu(dense(width, h.shape[-1], self.init, self.dtype)(h))
        h = dense(math.prod(self.image_shape), h.shape[-1], self.init,
                  _output_dtype(self.dtype))(h)
        return h.reshape((z.shape[0], *self.image_shape))


class ConvEncoder(nn.Module):
    """Strided 4×4 convolutions (each halves H and W) with ReLU, then a linear layer.

    With ``num_classes = K > 0`` the one-hot label is broadcast over H and W and concatenated
    to the input as K extra channels.
    """

    channels: Sequence[int]
    features: int
    num_classes: int = 0
    dtype: Any = jnp.float32  # hidden layers' computation dtype (see make_autoencoder)

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        h = x.astype(self.dtype)
        one_hot = _one_hot(y, self.num_classes, x.shape[0], "ConvEncoder", h.dtype)
        if one_hot is not None:
            planes = jnp.broadcast_to(one_hot[:, None, None, :],
                                      (*x.shape[:-1], self.num_classes))
            h = jnp.concatenate([h, planes], axis=-1)
        for ch in self.channels:
            h = nn.relu(layers.Conv(ch, (4, 4), strides=(2, 2), padding="SAME",
                                    dtype=self.dtype)(h))
        return nn.Dense(self.features, dtype=_output_dtype(self.dtype))(
            h.reshape((h.shape[0], -1)))


class ConvDecoder(nn.Module):
    """A linear layer to a small feature map, then strided transposed convolutions.

    ``channels`` lists the transposed convolutions' widths from coarse to fine; each doubles
    H and W, so H and W of ``image_shape`` must be divisible by ``2 ** len(channels)``.
    With ``num_classes = K > 0`` the one-hot label ``[B, K]`` is concatenated to z.
    """

    channels: Sequence[int]
    image_shape: Sequence[int]
    num_classes: int = 0
    dtype: Any = jnp.float32  # hidden layers' computation dtype (see make_autoencoder)

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array | None = None) -> jax.Array:
        h_out, w_out, c_out = self.image_shape
        factor = 2 ** len(self.channels)
        if h_out % factor or w_out % factor:
            raise ValueError(
                f"ConvDecoder with {len(self.channels)} upsamplings needs H and W divisible by "
                f"{factor}, got image_shape {tuple(self.image_shape)}."
            )
        h0, w0 = h_out // factor, w_out // factor
        h = z.astype(self.dtype)
        one_hot = _one_hot(y, self.num_classes, z.shape[0], "ConvDecoder", h.dtype)
        if one_hot is not None:
            h = jnp.concatenate([h, one_hot], axis=-1)
        h = nn.relu(nn.Dense(h0 * w0 * self.channels[0], dtype=self.dtype)(h))
        h = h.reshape((z.shape[0], h0, w0, self.channels[0]))
        for ch in self.channels[1:]:
            h = nn.relu(layers.ConvTranspose(ch, (4, 4), strides=(2, 2), padding="SAME",
                                             dtype=self.dtype)(h))
        return layers.ConvTranspose(c_out, (4, 4), strides=(2, 2), padding="SAME",
                                    dtype=_output_dtype(self.dtype))(h)


def _check_images(x: jax.Array, image_shape: Sequence[int]) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"expected images of shape [B, {', '.join(map(str, image_shape))}], got "
            f"{tuple(x.shape)}; reshape the batch or set the model's image_shape."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"images must be floating point (e.g. uint8 / 255), got {x.dtype}.")


def _check_parts(model: nn.Module) -> None:
    """The encoder and decoder must be built for the model's ``num_classes``."""
    for part in ("encoder", "decoder"):
        k = getattr(getattr(model, part), "num_classes", 0)
        if k != model.num_classes:
            raise ValueError(
                f"{type(model).__name__} has num_classes={model.num_classes} but its {part} "
                f"was built with num_classes={k}; build both with the same (make_autoencoder "
                f"does).")


def _labels(model: nn.Module, y: jax.Array | None, batch_shape: tuple[int, ...], *,
            broadcast: bool = False) -> jax.Array | None:
    _check_parts(model)
    return labels.check_labels(y, num_classes=model.num_classes, batch_shape=batch_shape,
                               owner=type(model).__name__, broadcast=broadcast)


def _condition(y: jax.Array | None) -> tuple[jax.Array, ...]:
    """The extra argument of the encoder / decoder: the labels when conditional, else none."""
    return () if y is None else (y,)


class Autoencoder(nn.Module):
    """Deterministic autoencoder ``x → z = enc(x) → dec(z)``.

    ``encode`` is the feature-extraction / compression API:
    ``model.apply(params, x, method=Autoencoder.encode)``. With ``num_classes = K > 0``
    (the encoder and decoder built with the same K) the encoder and the decoder both take the
    labels ``y: int [B]`` in ``[0, K)``: ``z = enc(x, y)``, ``dec(z, y)``.
    """

    encoder: nn.Module
    decoder: nn.Module
    image_shape: Sequence[int]
    num_classes: int = 0

    def encode(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Codes ``z: [B, D]`` of images ``x: [B, H, W, C]`` (and labels ``y: int [B]``)."""
        _check_images(x, self.image_shape)
        y = _labels(self, y, (x.shape[0],))
        return self.encoder(x, *_condition(y))

    def decode(self, z: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Decoder outputs ``[B, H, W, C]`` (logits or means) for codes ``z: [B, D]`` (and
        labels ``y: int [B]``)."""
        y = _labels(self, y, (z.shape[0],))
        return self.decoder(z, *_condition(y))

    def __call__(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        return self.decode(self.encode(x, y), y)


class VAE(nn.Module):
    """Variational autoencoder with a diagonal-Gaussian encoder q(z|x) and prior N(0, I).

    The encoder predicts ``2·latent_dim`` numbers, split into the mean and log-variance.

    With ``num_classes = K > 0`` (the encoder and decoder built with the same K) it is the
    conditional VAE of Sohn et al. 2015: q(z|x, y), p(x|z, y) and the prior N(0, I); the
    labels ``y: int [B]`` in ``[0, K)`` reach the encoder and the decoder as one-hot vectors
    (see the module docstring).
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    image_shape: Sequence[int]
    num_classes: int = 0

    def encode(self, x: jax.Array, y: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """Mean and log-variance of q(z|x) (q(z|x, y) with labels ``y: int [B]``), each
        ``[B, latent_dim]``."""
        _check_images(x, self.image_shape)
        y = _labels(self, y, (x.shape[0],))
        h = self.encoder(x, *_condition(y))
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def decode(self, z: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Decoder outputs ``[..., H, W, C]`` for codes ``z: [..., latent_dim]``.

        For a conditional VAE, labels ``y: int`` of the leading shape ``[...]`` of z or one
        that broadcasts to it (e.g. ``[B]`` for ``z: [K, B, D]``, importance samples).
        """
        lead = z.shape[:-1]
        y = _labels(self, y, lead, broadcast=True)
        flat = () if y is None else (y.reshape((-1,)),)
        out = self.decoder(z.reshape((-1, self.latent_dim)), *flat)
        return out.reshape((*lead, *out.shape[1:]))

    def __call__(self, x: jax.Array, key: jax.Array, y: jax.Array | None = None):
        """Reconstruct ``x`` through one sample ``z ~ q(z|x)`` (``q(z|x, y)``) drawn from
        ``key``; a conditional VAE decodes it with the same labels ``y: int [B]``.

        Returns:
          ``(outputs [B, H, W, C], mean [B, D], logvar [B, D])``.
        """
        mean, logvar = self.encode(x, y)
        z = reparameterize(key, mean, logvar)
        return self.decode(z, y), mean, logvar


def make_autoencoder(
    *,
    architecture: str,
    image_shape: Sequence[int],
    latent_dim: int,
    variational: bool,
    hidden: Sequence[int] = (400,),
    channels: Sequence[int] = (32, 64),
    init: str = "lecun",
    num_classes: int = 0,
    dtype: Any = jnp.float32,
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
      num_classes: K > 0 builds the class-conditional model (a conditional VAE, or a
        conditional autoencoder), whose encoder and decoder both take labels ``y: int [B]``
        in ``[0, K)`` as one-hot vectors (see the module docstring); 0 (the default) the
        unconditional one, with the same parameters as before.
      dtype: the computation dtype of the encoder's and decoder's hidden layers (e.g.
        ``jnp.bfloat16``); their output layers compute in float32 (a bias summed over
        every pixel of a bfloat16 output gets a badly rounded gradient on CPUs: 4× too small
        at 16×16×8), and parameters, codes and decoder outputs stay float32.
    """
    if init not in DENSE_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {DENSE_INITS}.")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0 (0: unconditional), got "
                         f"{num_classes!r}.")
    k = num_classes
    features = 2 * latent_dim if variational else latent_dim
    if architecture == "mlp":
        encoder = MLPEncoder(hidden=tuple(hidden), features=features, init=init, num_classes=k,
                             dtype=dtype)
        decoder = MLPDecoder(hidden=tuple(reversed(hidden)), image_shape=tuple(image_shape),
                             init=init, num_classes=k, dtype=dtype)
    elif architecture == "conv":
        encoder = ConvEncoder(channels=tuple(channels), features=features, num_classes=k,
                              dtype=dtype)
        decoder = ConvDecoder(channels=tuple(reversed(channels)), image_shape=tuple(image_shape),
                              num_classes=k, dtype=dtype)
    else:
        raise ValueError(f"unknown architecture {architecture!r}; choose 'mlp' or 'conv'.")
    if variational:
        return VAE(encoder=encoder, decoder=decoder, latent_dim=latent_dim,
                   image_shape=tuple(image_shape), num_classes=k)
    return Autoencoder(encoder=encoder, decoder=decoder, image_shape=tuple(image_shape),
                       num_classes=k)
