"""Diagonal Gaussians: KL divergences, log densities and the reparameterization trick.

All functions are elementwise: they return one value per dimension and never reduce, so the
caller chooses how to sum (e.g. over latent dimensions) and average (over the batch).
Variances are passed as log-variances, which is what encoders predict and what keeps the
formulas finite for extreme scales.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxgen import validation

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(
    mean1: jax.Array, logvar1: jax.Array, mean2: jax.Array, logvar2: jax.Array
) -> jax.Array:
    r"""KL divergence between two diagonal Gaussians, per dimension.

    .. math::
        \mathrm{KL}(\mathcal N(\mu_1,\sigma_1^2)\,\|\,\mathcal N(\mu_2,\sigma_2^2))
        = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2}
          - \frac12

    Computed as ``½(expm1(d) − d) + ½(μ₁ − μ₂)² e^{−logvar₂}`` with ``d = logvar₁ − logvar₂``:
    ``expm1(d) − d`` is exactly 0 at ``d = 0`` (so KL(p‖p) = 0 with finite gradients) and it
    stays finite for log-variances of ±20 and beyond, where forming σ² ratios would not.

    Args:
      mean1: μ₁, mean of the first distribution (q).
      logvar1: log σ₁², log-variance of q.
      mean2: μ₂, mean of the second distribution (p).
      logvar2: log σ₂², log-variance of p.
      All four broadcast together; floating dtype.

    Returns:
      The elementwise KL in nats, with the broadcast shape of the inputs. Not reduced.
    """
    for name, x in (("mean1", mean1), ("logvar1", logvar1), ("mean2", mean2), ("logvar2", logvar2)):
        validation.check_floating(name, x)
    validation.check_broadcastable(mean1=mean1, logvar1=logvar1, mean2=mean2, logvar2=logvar2)
    d = logvar1 - logvar2
    return 0.5 * (jnp.expm1(d) - d) + 0.5 * jnp.square(mean1 - mean2) * jnp.exp(-logvar2)


def standard_normal_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    r"""KL(N(μ, σ²) ‖ N(0, 1)) per dimension: ``−½(1 + log σ² − μ² − σ²)``.

    Evaluated as ``½(expm1(logvar) − logvar + μ²)``, the same quantity without cancellation
    near σ² = 1.

    Args:
      mean: μ, any shape, floating dtype.
      logvar: log σ², broadcastable with ``mean``.

    Returns:
      Elementwise KL in nats (not reduced).
    """
    validation.check_floating("mean", mean)
    validation.check_floating("logvar", logvar)
    validation.check_broadcastable(mean=mean, logvar=logvar)
    return 0.5 * (jnp.expm1(logvar) - logvar + jnp.square(mean))


def gaussian_log_prob(x: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    r"""Log density of a diagonal Gaussian, per dimension.

    ``log N(x; μ, σ²) = −½(log 2π + log σ² + (x − μ)² / σ²)``.

    Args:
      x: points, any shape.
      mean: μ, broadcastable with ``x``.
      logvar: log σ², broadcastable with ``x``.

    Returns:
      Elementwise log density in nats (not reduced).
    """
    validation.check_floating("x", x)
    validation.check_broadcastable(x=x, mean=mean, logvar=logvar)
    return -0.5 * (_LOG_2PI + logvar + jnp.square(x - mean) * jnp.exp(-logvar))


def reparameterize(
    key: jax.Array, mean: jax.Array, logvar: jax.Array, num_samples: int | None = None
) -> jax.Array:
    r"""Draw z ~ N(μ, σ²) as a differentiable function of (μ, log σ²).

    ``z = μ + σ ⊙ ε`` with ``ε ~ N(0, I)`` drawn from ``key`` (Kingma & Welling 2014,
    arXiv:1312.6114), so gradients flow to ``mean`` and ``logvar``.

    Args:
      key: a PRNG key, used once.
      mean: μ, shape ``[..., D]``.
      logvar: log σ², same shape as ``mean``.
      num_samples: if given, draw that many samples: the result has shape
        ``[num_samples, ..., D]``; otherwise one sample with the shape of ``mean``.

    Returns:
      Samples z with the dtype of ``mean``.
    """
    validation.check_floating("mean", mean)
    validation.check_same_shape(mean=mean, logvar=logvar)
    shape = tuple(jnp.shape(mean))
    if num_samples is not None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples}.")
        shape = (num_samples, *shape)
    eps = jax.random.normal(key, shape, dtype=jnp.result_type(mean))
    return mean + jnp.exp(0.5 * logvar) * eps
