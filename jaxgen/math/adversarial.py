"""Adversarial (GAN) losses from discriminator logits, per example, and the R1 penalty.

Every loss takes raw discriminator outputs ("logits"), never probabilities: the log-sigmoid /
softplus forms stay finite and keep useful gradients at logits of ±100, where
``log(sigmoid(x))`` would give ``-inf`` and a zero gradient. Logits may carry trailing axes
(a PatchGAN map ``[B, H, W, 1]``); each loss averages over them and returns one value per
example, shape ``[B]``. The caller reduces over the batch.

Notation: ``r = D(x)`` are the logits of real examples x, ``f = D(G(z))`` those of generated
ones, and ``σ`` is the logistic sigmoid, so the discriminator's probability that its input is
real is ``σ(D(·))``.

Discriminator losses take ``(real_logits, fake_logits)`` of the same shape and pair example i
of one with example i of the other; generator losses take ``fake_logits``. Both are minimised:
:func:`get_gan_losses` returns a matching pair by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxgen import validation

__all__ = [
    "GAN_LOSS_KINDS",
    "GANLosses",
    "get_gan_losses",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "r1_penalty",
]


def _check_logits(name: str, logits: jax.Array) -> None:
    validation.check_floating(name, logits)
    if jnp.ndim(logits) < 1:
        raise ValueError(
            f"{name} must have a leading batch axis, shape [B] or [B, ...], got a scalar; "
            "pass the discriminator's output for the whole batch."
        )


def _check_pair(real_logits: jax.Array, fake_logits: jax.Array) -> None:
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    # Example i of the real batch is paired with example i of the fake batch, so the shapes
    # (batch size included) must agree; broadcasting would silently change the weighting.
    validation.check_same_shape(real_logits=real_logits, fake_logits=fake_logits)


def _per_example(values: jax.Array) -> jax.Array:
    """Mean over every axis but the first: ``[B, ...] -> [B]``."""
    return jnp.mean(values, axis=tuple(range(1, values.ndim)))


def _bce(logits: jax.Array, label: float) -> jax.Array:
    return optax.losses.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label))


def minimax_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    r"""Discriminator loss of the original GAN game, per example.

    Goodfellow et al. 2014, "Generative Adversarial Networks", arXiv:1406.2661. The
    discriminator maximises ``V(D, G) = E_x[log D(x)] + E_z[log(1 − D(G(z)))]``; this is the
    negated value, to minimise:

    .. math::
        \mathcal L_D = -\log\sigma(r) - \log(1 - \sigma(f)) = \mathrm{softplus}(-r)
          + \mathrm{softplus}(f),

    i.e. binary cross-entropy with label 1 for real and 0 for fake
    (``optax.losses.sigmoid_binary_cross_entropy``). For a fixed generator the minimiser is
    ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``, i.e. ``r* = log p_data(x) − log p_g(x)``,
    and at ``p_g = p_data`` the game's value ``−E[L_D]`` is ``−log 4``.

    Args:
      real_logits: r = D(x), logits of real data, ``[B]`` or ``[B, ...]``, floating.
      fake_logits: f = D(G(z)), logits of generated data, the same shape as ``real_logits``.

    Returns:
      ``[B]`` loss in nats, averaged over any trailing (patch) axes.
    """
    _check_pair(real_logits, fake_logits)
    return _per_example(_bce(real_logits, 1.0) + _bce(fake_logits, 0.0))


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
    r"""The saturating generator loss of the original minimax game, per example.

    Goodfellow et al. 2014, arXiv:1406.2661: the generator minimises
    ``E_z[log(1 − D(G(z)))]``,

    .. math::
        \mathcal L_G = \log(1 - \sigma(f)) = -\mathrm{softplus}(f).

    It saturates: when D confidently rejects the fakes (``f → −∞``) its gradient
    ``−σ(f)`` vanishes, which is why :func:`non_saturating_generator_loss` is the practical
    default. The value is ≤ 0 and unbounded below.

    Args:
      fake_logits: f = D(G(z)), ``[B]`` or ``[B, ...]``, floating.

    Returns:
      ``[B]`` loss in nats, averaged over any trailing axes.
    """
    _check_logits("fake_logits", fake_logits)
    return _per_example(-_bce(fake_logits, 0.0))


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
    r"""The non-saturating generator loss, per example.

    Goodfellow et al. 2014, arXiv:1406.2661, Section 3: instead of minimising
    ``log(1 − D(G(z)))`` the generator maximises ``log D(G(z))``,

    .. math::
        \mathcal L_G = -\log\sigma(f) = \mathrm{softplus}(-f),

    which has the same fixed point but strong gradients early in training, when ``f ≪ 0``.

    Args:
      fake_logits: f = D(G(z)), ``[B]`` or ``[B, ...]``, floating.

    Returns:
      ``[B]`` loss in nats, averaged over any trailing axes.
    """
    _check_logits("fake_logits", fake_logits)
    return _per_example(_bce(fake_logits, 1.0))


def least_squares_discriminator_loss(
    real_logits: jax.Array, fake_logits: jax.Array
) -> jax.Array:
    r"""Least-squares (LSGAN) discriminator loss, as CycleGAN uses it, per example.

    Mao et al. 2017, "Least Squares Generative Adversarial Networks", arXiv:1611.04076, with
    targets a = 0 (fake), b = 1 (real); the discriminator's outputs are used raw, with no
    sigmoid:

    .. math::
        \mathcal L_D = \tfrac12\left[(r - 1)^2 + f^2\right].

    The factor ½ is CycleGAN's (Zhu et al. 2017, arXiv:1703.10593, Section 7.1): it halves the
    discriminator's objective to slow D relative to G. It does not change the minimiser
    ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``.

    Args:
      real_logits: r = D(x), raw outputs on real data, ``[B]`` or ``[B, ...]``, floating.
      fake_logits: f = D(G(z)), raw outputs on generated data, the same shape.

    Returns:
      ``[B]`` loss, averaged over any trailing (patch) axes.
    """
    _check_pair(real_logits, fake_logits)
    real = optax.losses.squared_error(real_logits, jnp.ones_like(real_logits))
    fake = optax.losses.squared_error(fake_logits, jnp.zeros_like(fake_logits))
    return _per_example(0.5 * (real + fake))


def least_squares_generator_loss(fake_logits: jax.Array) -> jax.Array:
    r"""Least-squares (LSGAN) generator loss, per example.

    Mao et al. 2017, arXiv:1611.04076, with target c = 1, unhalved as in CycleGAN's reference
    implementation, so the cycle weight λ = 10 keeps its meaning relative to it:

    .. math::
        \mathcal L_G = (f - 1)^2.

    Args:
      fake_logits: f = D(G(z)), raw discriminator outputs, ``[B]`` or ``[B, ...]``, floating.

    Returns:
      ``[B]`` loss, averaged over any trailing axes.
    """
    _check_logits("fake_logits", fake_logits)
    return _per_example(optax.losses.squared_error(fake_logits, jnp.ones_like(fake_logits)))


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    r"""Hinge discriminator loss, per example.

    Lim & Ye 2017, "Geometric GAN", arXiv:1705.02894; Miyato et al. 2018, "Spectral
    Normalization for GANs", arXiv:1802.05957:

    .. math::
        \mathcal L_D = \max(0, 1 - r) + \max(0, 1 + f)

    (``optax.losses.hinge_loss`` with target +1 for real and −1 for fake).

    Args:
      real_logits: r = D(x), raw outputs on real data, ``[B]`` or ``[B, ...]``, floating.
      fake_logits: f = D(G(z)), raw outputs on generated data, the same shape.

    Returns:
      ``[B]`` loss, averaged over any trailing axes.
    """
    _check_pair(real_logits, fake_logits)
    real = optax.losses.hinge_loss(real_logits, 1.0)
    fake = optax.losses.hinge_loss(fake_logits, -1.0)
    return _per_example(real + fake)


def hinge_generator_loss(fake_logits: jax.Array) -> jax.Array:
    r"""Hinge-GAN generator loss ``L_G = −f``, per example (Lim & Ye 2017, arXiv:1705.02894).

    Args:
      fake_logits: f = D(G(z)), raw outputs, ``[B]`` or ``[B, ...]``, floating.

    Returns:
      ``[B]`` loss, averaged over any trailing axes.
    """
    _check_logits("fake_logits", fake_logits)
    return _per_example(-fake_logits)


def r1_penalty(logits_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
    r"""R1 gradient penalty on real data, per example (without the γ/2 factor).

    Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
    arXiv:1801.04406, Eq. (9): the discriminator adds ``(γ/2) E_x[‖∇_x D(x)‖²]`` to its
    loss. This returns

    .. math::
        R_1(x_i) = \left\lVert \nabla_{x_i} D(x_i) \right\rVert^2,

    where ``D(x_i)`` is the logit of example i (summed over patch axes when D outputs a map);
    the caller multiplies by γ/2 and averages over the batch. Differentiating the result
    with respect to the discriminator's parameters (double back-propagation) works because
    ``logits_fn`` closes over them.

    The per-example gradient is taken as the gradient of the batch sum, which is exact only
    when examples do not interact inside D: evaluate a BatchNorm discriminator with running
    statistics (``train=False``) or use one without batch statistics.

    Args:
      logits_fn: maps a batch ``[B, ...]`` of inputs to logits ``[B]`` or ``[B, ...]``,
        e.g. ``lambda x: disc.apply(variables, x, train=False)``.
      real: x, real data ``[B, ...]``, floating.

    Returns:
      ``[B]`` squared gradient norms, in the dtype of ``real``.
    """
    validation.check_floating("real", real)
    if jnp.ndim(real) < 1:
        raise ValueError("real must have a leading batch axis, shape [B, ...], got a scalar.")

    def total_logit(x):
        logits = logits_fn(x)
        if jnp.ndim(logits) < 1 or jnp.shape(logits)[0] != jnp.shape(x)[0]:
            raise ValueError(
                f"logits_fn must return one logit (or logit map) per example, shape [B, ...] "
                f"with B = {jnp.shape(x)[0]}, got shape {jnp.shape(logits)}."
            )
        return jnp.sum(logits)

    grads = jax.grad(total_logit)(real)
    return jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim)))


class GANLosses(NamedTuple):
    """A discriminator loss and the generator loss of the same game; unpacks as a pair."""

    discriminator: Callable[[jax.Array, jax.Array], jax.Array]
    generator: Callable[[jax.Array], jax.Array]


_GAN_LOSSES = {
    "minimax": GANLosses(minimax_discriminator_loss, minimax_generator_loss),
    "non_saturating": GANLosses(minimax_discriminator_loss, non_saturating_generator_loss),
    "least_squares": GANLosses(least_squares_discriminator_loss, least_squares_generator_loss),
    "hinge": GANLosses(hinge_discriminator_loss, hinge_generator_loss),
}
GAN_LOSS_KINDS = tuple(_GAN_LOSSES)


def get_gan_losses(kind: str) -> GANLosses:
    """The ``(discriminator_loss, generator_loss)`` pair of a GAN objective, by name.

    Args:
      kind: ``"minimax"`` (saturating generator loss of the original game),
        ``"non_saturating"`` (minimax discriminator loss, generator maximises log D(G(z))),
        ``"least_squares"`` (LSGAN / CycleGAN) or ``"hinge"``.

    Returns:
      ``GANLosses(discriminator, generator)``: ``discriminator(real_logits, fake_logits)`` and
      ``generator(fake_logits)``, each returning ``[B]`` per-example losses to minimise.

    Raises:
      ValueError: for an unknown ``kind``; the message lists the valid ones.
    """
    try:
        return _GAN_LOSSES[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown GAN loss kind {kind!r}; choose one of {', '.join(GAN_LOSS_KINDS)}."
        ) from None
