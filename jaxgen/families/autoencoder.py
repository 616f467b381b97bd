"""Autoencoders and VAEs: the per-example losses and the family object.

Losses per example (summed over pixels / latent dimensions):

* AE: the reconstruction error of the *clean* image from the (optionally corrupted) input:
  binary cross-entropy from logits (nats) or squared error.
* VAE (Kingma & Welling 2013, arXiv:1312.6114): −ELBO = −log p(x|z) + β·KL(q(z|x) ‖ N(0, I)),
  z = μ + σ ⊙ ε on an explicit key; evaluation adds the k-sample IWAE bound (Burda et al.
  2015, arXiv:1509.00519), whose negation estimates the NLL.

The functions below are pure and usable without the runner, e.g.
``vae_terms(decoder_outputs, x, mean, logvar).neg_elbo``. The family, registered as
``"autoencoder"``, is :class:`Autoencoder`: what both share, building the variant
``model.variational`` selects, :class:`VariationalAutoencoder` or
:class:`DeterministicAutoencoder`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from jaxgen import math as jmath
from jaxgen.families.base import (
    EvalPass,
    Family,
    Preview,
    SamplingConfig,
    check_dtype,
    compute_dtype,
    image_axes,
    init_variables,
)
from jaxgen.models.autoencoders import DENSE_INITS, VAE, make_autoencoder
from jaxgen.models.autoencoders import Autoencoder as AutoencoderModule
from jaxgen.training import LossOutput, TrainState, gradient_update, per_example_keys
from jaxgen.training.keys import split_named
from jaxgen.validation import ConfigError, check_choice, check_number

RECONSTRUCTIONS = ("bce", "mse")
CORRUPTIONS = ("none", "gaussian", "mask")
ARCHITECTURES = ("mlp", "conv")


# --- pure functions ----------------------------------------------------------------------


def corrupt(key: jax.Array, x: jax.Array, kind: str, level: float) -> jax.Array:
    """Corrupt images for a denoising autoencoder (Vincent et al. 2008).

    Args:
      key: one key for the whole array.
      x: images in [0, 1], any shape.
      kind: ``"none"``; ``"gaussian"``: add N(0, level²) noise and clip to [0, 1]; ``"mask"``:
        zero each pixel with probability ``level``.
      level: noise standard deviation or masking probability, in [0, 1].
    """
    check_choice("corruption", kind, CORRUPTIONS)
    if kind == "none" or level == 0:
        return x
    if kind == "gaussian":
        return jnp.clip(x + level * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)
    return x * jax.random.bernoulli(key, 1.0 - level, x.shape).astype(x.dtype)


def reconstruction_log_likelihood(outputs: jax.Array, x: jax.Array, *, reconstruction: str,
                                  gaussian_logvar: float = -4.6) -> jax.Array:
    """log p(x | decoder outputs) per example, summed over the last three (pixel) axes, nats.

    ``"bce"``: Bernoulli with logits ``outputs`` (x in [0, 1]); ``"mse"``: Gaussian with mean
    ``outputs`` and fixed log-variance ``gaussian_logvar``. ``outputs: [..., H, W, C]``, ``x``
    broadcastable to it. Returns ``[...]``.
    """
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    x = jnp.broadcast_to(x, outputs.shape)
    if reconstruction == "bce":
        return -jmath.binary_cross_entropy(outputs, x).sum(image_axes(outputs))
    logvar = jnp.asarray(gaussian_logvar, outputs.dtype)
    return jmath.gaussian_log_prob(x, outputs, logvar).sum(image_axes(outputs))


def reconstruction_error(outputs: jax.Array, x: jax.Array, *, reconstruction: str) -> jax.Array:
    """The AE loss per example ``[B]``: BCE from logits (nats) or squared error, summed over
    pixels."""
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    if reconstruction == "bce":
        return jmath.binary_cross_entropy(outputs, x).sum(image_axes(outputs))
    return jmath.squared_error(outputs, x).sum(image_axes(outputs))


def to_image(outputs: jax.Array, reconstruction: str) -> jax.Array:
    """Decoder outputs → images in [0, 1] (sigmoid of BCE logits; clipped MSE means)."""
    return jax.nn.sigmoid(outputs) if reconstruction == "bce" else jnp.clip(outputs, 0.0, 1.0)


@struct.dataclass
class VAETerms:
    """Per-example VAE terms, each ``[B]``, in nats."""

    loss: jax.Array  # −log p(x|z) + β·KL, what training minimises
    neg_elbo: jax.Array  # −log p(x|z) + KL ≥ −log p(x)
    reconstruction: jax.Array  # −log p(x|z)
    kl: jax.Array  # KL(q(z|x) ‖ N(0, I))


def vae_terms(outputs: jax.Array, x: jax.Array, mean: jax.Array, logvar: jax.Array, *,
              reconstruction: str = "bce", beta: float = 1.0,
              gaussian_logvar: float = -4.6) -> VAETerms:
    """The VAE's per-example negative ELBO from model outputs.

    −ELBO(x) = −log p(x|z) + KL(q(z|x) ‖ N(0, I)) with one reparameterised z ~ q(z|x).

    Args:
      outputs: decoder outputs for that z, ``[B, H, W, C]``.
      x: the clean images ``[B, H, W, C]`` in [0, 1].
      mean, logvar: q(z|x)'s parameters, ``[B, D]``.
      reconstruction, gaussian_logvar: the decoder's likelihood (see
        :func:`reconstruction_log_likelihood`).
      beta: weight of the KL term in ``loss`` (β-VAE, Higgins et al. 2017).
    """
    log_lik = reconstruction_log_likelihood(outputs, x, reconstruction=reconstruction,
                                            gaussian_logvar=gaussian_logvar)
    kl = jmath.standard_normal_kl(mean, logvar).sum(-1)
    return VAETerms(loss=-jmath.elbo(log_lik, kl, beta=beta), neg_elbo=-jmath.elbo(log_lik, kl),
                    reconstruction=-log_lik, kl=kl)


def iwae_nll(decode, x: jax.Array, mean: jax.Array, logvar: jax.Array, key: jax.Array, *,
             num_samples: int, reconstruction: str = "bce", gaussian_logvar: float = -4.6
             ) -> jax.Array:
    """−L_k, the k-sample importance-weighted estimate of −log p(x), per example ``[B]``.

    Args:
      decode: ``z [K, B, D] -> outputs [K, B, H, W, C]``.
      x: ``[B, H, W, C]``; mean, logvar: ``[B, D]``; key: one key per example ``[B]``.
    """
    z = jax.vmap(functools.partial(jmath.reparameterize, num_samples=num_samples))(
        key, mean, logvar)
    z = jnp.swapaxes(z, 0, 1)  # [K, B, D]
    log_lik = reconstruction_log_likelihood(decode(z), x[None], reconstruction=reconstruction,
                                            gaussian_logvar=gaussian_logvar)
    zero = jnp.zeros((), z.dtype)
    log_prior = jmath.gaussian_log_prob(z, zero, zero).sum(-1)
    log_post = jmath.gaussian_log_prob(z, mean[None], logvar[None]).sum(-1)
    return -jmath.iwae_bound(log_lik, log_prior, log_post)


# --- config ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AutoencoderModel:
    variational: bool = True
    architecture: str = "mlp"
    latent_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    channels: tuple[int, ...] = (32, 64)
    init: str = "torch"
    # Condition the encoder and decoder on the data's classes (one-hot labels): q(z|x, y),
    # p(x|z, y) (Sohn et al. 2015); the VAE then samples z ~ N(0, I) for the labels asked for.
    class_conditional: bool = False
    dtype: str = "float32"  # compute dtype ("bfloat16": mixed precision); params stay float32

    def __post_init__(self):
        check_choice("model.architecture", self.architecture, ARCHITECTURES)
        check_dtype("model.dtype", self.dtype)
        check_choice("model.init", self.init, DENSE_INITS)
        check_number("model.latent_dim", self.latent_dim, low=1, integer=True)
        for i, w in enumerate((*self.hidden, *self.channels)):
            check_number(f"model width #{i}", w, low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class AutoencoderLoss:
    reconstruction: str = "bce"
    beta: float = 1.0
    gaussian_logvar: float = -4.6
    corruption: str = "none"
    corruption_level: float = 0.0

    def __post_init__(self):
        check_choice("loss.reconstruction", self.reconstruction, RECONSTRUCTIONS)
        check_number("loss.beta", self.beta, low=0.0)
        check_number("loss.gaussian_logvar", self.gaussian_logvar, low=-30.0, high=30.0)
        check_choice("loss.corruption", self.corruption, CORRUPTIONS)
        check_number("loss.corruption_level", self.corruption_level, low=0.0, high=1.0)


@dataclasses.dataclass(frozen=True)
class AutoencoderEval:
    iwae_samples: int = 100  # k of the IWAE NLL; 0: skip
    iwae_max_examples: int = 10000  # global; 0: the whole test split
    iwae_batch_size: int = 100  # global

    def __post_init__(self):
        check_number("eval.iwae_samples", self.iwae_samples, low=0, integer=True)
        check_number("eval.iwae_max_examples", self.iwae_max_examples, low=0, integer=True)
        check_number("eval.iwae_batch_size", self.iwae_batch_size, low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    model: AutoencoderModel = AutoencoderModel()
    loss: AutoencoderLoss = AutoencoderLoss()
    eval: AutoencoderEval = AutoencoderEval()
    sampling: SamplingConfig = SamplingConfig()  # VAE only


# --- family ------------------------------------------------------------------------------


class Autoencoder(Family):
    """The ``"autoencoder"`` family on images in [0, 1]: what the AE and the VAE share.

    ``Autoencoder(config, image_shape=...)`` builds the variant ``config.model.variational``
    selects: a :class:`VariationalAutoencoder` (True) or a :class:`DeterministicAutoencoder`
    (False), so the registry entry and existing configs keep choosing by that one flag. The
    shared parts: the model, the input corruption, the training step, the test pass and the
    reconstruction grid; each variant gives its loss terms, its reconstruction and its codes.

    With ``model.class_conditional`` both variants are class-conditional: the encoder and
    the decoder take ``batch["label"]`` in every body (training, the test passes, the codes,
    and the VAE's prior samples).
    """

    name = "autoencoder"
    Config = AutoencoderConfig
    input_range = "unit"
    variational: ClassVar[bool]  # the model: a VAE, or a deterministic autoencoder

    def __new__(cls, config: AutoencoderConfig | None = None, **kwargs):
        if cls is Autoencoder:
            if not isinstance(config, AutoencoderConfig):
                raise TypeError(f"the {cls.name} family takes a {AutoencoderConfig.__name__}, "
                                f"got {type(config).__name__}.")
            cls = VariationalAutoencoder if config.model.variational else DeterministicAutoencoder
        return super().__new__(cls)

    def __init__(self, config: AutoencoderConfig, *, image_shape, num_classes: int = 0):
        super().__init__(config, image_shape=image_shape, num_classes=num_classes)
        m = config.model
        if m.variational != self.variational:
            raise ConfigError(f"{type(self).__name__} needs model.variational="
                              f"{self.variational}, got {m.variational}.")
        self.condition_on_classes(m.class_conditional)
        self.model = make_autoencoder(
            architecture=m.architecture, image_shape=self.image_shape, latent_dim=m.latent_dim,
            variational=self.variational, hidden=m.hidden, channels=m.channels, init=m.init,
            num_classes=self.num_classes if self.conditional else 0,
            dtype=compute_dtype(m.dtype))

    def labels(self, batch) -> jax.Array | None:
        """The labels the model takes: ``batch["label"]`` when conditional, else None."""
        return batch["label"] if self.conditional else None

    def init(self, key, tx, *, ema_decay=0.0):
        init_key, z_key = jax.random.split(key)
        x0 = jnp.zeros((1, *self.image_shape), jnp.float32)
        y0 = (jnp.zeros((1,), jnp.int32),) if self.conditional else ()
        params = init_variables(self.model, init_key, *self._init_inputs(x0, z_key),
                                *y0)["params"]
        return TrainState.create(apply_fn=self.model.apply, params=params, tx=tx,
                                 ema_decay=ema_decay)

    def terms(self, params, x: jax.Array, key: jax.Array, y: jax.Array | None = None
              ) -> dict[str, jax.Array]:
        """Per-example terms ``{name: [b]}`` on this device's shard, ``"loss"`` first: those
        of :meth:`_terms` on the corrupted ``x`` (the target stays the clean ``x``); `y`: the
        labels of a conditional model."""
        loss = self.config.loss
        keys = split_named(key, ("corruption", "z"))
        x_in = jax.vmap(corrupt, in_axes=(0, 0, None, None))(
            per_example_keys(keys["corruption"], x.shape[0]), x, loss.corruption,
            loss.corruption_level)
        return self._terms({"params": params}, x_in, x, keys["z"], y)

    def train_body(self, state, batch, key):
        def loss_fn(params):
            terms = self.terms(params, batch["image"], key, self.labels(batch))
            means = {k: v.mean() for k, v in terms.items()}
            return LossOutput(loss=means["loss"], metrics=means)

        state, metrics, _ = gradient_update(state, loss_fn)
        return state, metrics

    def _test_terms(self, state, batch, key):
        terms = self.terms(state.eval_params, batch["image"], key, self.labels(batch))
        del terms["loss"]
        return terms

    def eval_passes(self):
        return {"test": EvalPass(self._test_terms, self._test_metrics())}

    def _reconstruct(self, state, batch, key):
        x = batch["image"]
        out = self._reconstruction({"params": state.eval_params}, x, self.labels(batch))
        return jnp.stack([x, to_image(out, self.config.loss.reconstruction)], axis=1)

    def previews(self):
        # The runner gives a preview the test images only ({"image"}), and a conditional
        # model cannot reconstruct without their labels: no reconstruction grid for it.
        if self.conditional:
            return {}
        return {"reconstructions": Preview(self._reconstruct)}

    # --- what each variant gives ---

    @abc.abstractmethod
    def _init_inputs(self, x0: jax.Array, z_key: jax.Array) -> tuple[jax.Array, ...]:
        """The model's inputs at init, from images ``x0 [1, H, W, C]`` and a key for z."""

    @abc.abstractmethod
    def _terms(self, variables, x_in: jax.Array, x: jax.Array, z_key: jax.Array,
               y: jax.Array | None = None) -> dict[str, jax.Array]:
        """Per-example terms ``{name: [b]}``, ``"loss"`` first, of the model on the
        (corrupted) input ``x_in`` with target ``x``; ``z_key``: one key for the batch; `y`:
        the labels of a conditional model (else None)."""

    @abc.abstractmethod
    def _test_metrics(self) -> tuple[str, ...]:
        """The names :meth:`_terms` returns besides ``"loss"``."""

    @abc.abstractmethod
    def _reconstruction(self, variables, x: jax.Array, y: jax.Array | None = None
                        ) -> jax.Array:
        """Decoder outputs ``[b, H, W, C]`` reconstructing ``x`` (no noise); `y`: the labels
        of a conditional model."""


class DeterministicAutoencoder(Autoencoder):
    """A (denoising) autoencoder: ``model.variational=False``; loss: the reconstruction
    error; it does not generate."""

    variational = False

    def _init_inputs(self, x0, z_key):
        return (x0,)

    def _error_name(self) -> str:
        """The loss's metric name: ``reconstruction_<this>``."""
        return "bce_nats" if self.config.loss.reconstruction == "bce" else "squared_error"

    def _terms(self, variables, x_in, x, z_key, y=None):
        reconstruction = self.config.loss.reconstruction
        out = self.model.apply(variables, x_in, y)
        err = reconstruction_error(out, x, reconstruction=reconstruction)
        sq = jmath.squared_error(to_image(out, reconstruction), x).mean(image_axes(x))
        return {"loss": err, f"reconstruction_{self._error_name()}": err, "mse_per_pixel": sq,
                "psnr_db": -10.0 * jnp.log10(jnp.maximum(sq, 1e-10))}

    def _test_metrics(self):
        return (f"reconstruction_{self._error_name()}", "mse_per_pixel", "psnr_db")

    def _reconstruction(self, variables, x, y=None):
        return self.model.apply(variables, x, y)

    def encode_body(self, state, batch, key):
        """The code ``z`` of each image (given its label, when conditional)."""
        return {"z": self.model.apply({"params": state.eval_params}, batch["image"],
                                      self.labels(batch), method=AutoencoderModule.encode)}


class VariationalAutoencoder(Autoencoder):
    """A VAE: ``model.variational=True``; loss: β-weighted −ELBO; evaluation adds the IWAE
    NLL; it generates from the prior (sampler ``"prior"``)."""

    variational = True
    samplers = ("prior",)

    def _init_inputs(self, x0, z_key):
        return (x0, z_key)

    def _terms(self, variables, x_in, x, z_key, y=None):
        loss = self.config.loss
        mean, logvar = self.model.apply(variables, x_in, y, method=VAE.encode)
        z = jax.vmap(jmath.reparameterize)(per_example_keys(z_key, x.shape[0]), mean, logvar)
        t = vae_terms(self.model.apply(variables, z, y, method=VAE.decode), x, mean, logvar,
                      reconstruction=loss.reconstruction, beta=loss.beta,
                      gaussian_logvar=loss.gaussian_logvar)
        return {"loss": t.loss, "neg_elbo_nats": t.neg_elbo,
                "reconstruction_nats": t.reconstruction, "kl_nats": t.kl}

    def _test_metrics(self):
        return ("neg_elbo_nats", "reconstruction_nats", "kl_nats")

    def _iwae(self, state, batch, key):
        variables = {"params": state.eval_params}
        x, y = batch["image"], self.labels(batch)
        mean, logvar = self.model.apply(variables, x, y, method=VAE.encode)

        def decode(z):  # z [K, B, D]; the labels [B] broadcast over the K samples
            return self.model.apply(variables, z, y, method=VAE.decode)

        nll = iwae_nll(decode, x, mean, logvar, per_example_keys(key, x.shape[0]),
                       num_samples=self.config.eval.iwae_samples,
                       reconstruction=self.config.loss.reconstruction,
                       gaussian_logvar=self.config.loss.gaussian_logvar)
        return {f"iwae{self.config.eval.iwae_samples}_nll_nats": nll}

    def eval_passes(self):
        passes = super().eval_passes()
        e = self.config.eval
        if e.iwae_samples > 0:
            passes["iwae"] = EvalPass(self._iwae, (f"iwae{e.iwae_samples}_nll_nats",),
                                      max_examples=e.iwae_max_examples,
                                      batch_size=e.iwae_batch_size)
        return passes

    def _reconstruction(self, variables, x, y=None):
        mean, _ = self.model.apply(variables, x, y, method=VAE.encode)  # the posterior mean
        return self.model.apply(variables, mean, y, method=VAE.decode)

    def sample_inputs(self, key, num):
        return {"z": jax.random.normal(key, (num, self.config.model.latent_dim))}

    def sample_body(self, sampler):
        check_choice("sampler", sampler, self.samplers)

        def sample(state, batch, key):  # z ~ N(0, I), decoded for batch["label"] if conditional
            out = self.model.apply({"params": state.eval_params}, batch["z"],
                                   self.labels(batch), method=VAE.decode)
            return to_image(out, self.config.loss.reconstruction)

        return sample

    def encode_body(self, state, batch, key):
        """q(z|x)'s (q(z|x, y)'s) ``mean`` and ``logvar`` of each image."""
        mean, logvar = self.model.apply({"params": state.eval_params}, batch["image"],
                                        self.labels(batch), method=VAE.encode)
        return {"mean": mean, "logvar": logvar}
