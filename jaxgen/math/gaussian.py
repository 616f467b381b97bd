"""Diagonal Gaussians: KL divergences, log densities and the reparameterization trick.

All functions are elementwise: they return one value per dimension and never reduce, so the
caller chooses how to sum (e.g. over latent dimensions) and average (over the batch).
Variances are passed as log-variances, which is what encoders predict and what keeps the
formulas finite for extreme scales.

Range (float32 and every other float dtype; float16/bfloat16 are computed in float32): for all
finite inputs — log-variances up to ±3.4e38 included — :func:`gaussian_kl`,
:func:`standard_normal_kl` and :func:`gaussian_log_prob` return the value correctly rounded to
a few ulps of the result's scale, exactly 0 KL for equal distributions, and ±inf only where the
true value lies beyond the dtype's range; never NaN. Three pieces make that so:

- σ₁²/σ₂² − 1 − log(σ₁²/σ₂²) as ``expm1(d) − d`` with ½d = ½logvar₁ − ½logvar₂ (the difference
  d itself may overflow), and ½e^d as (½e^{d/2})·e^{d/2} once expm1 would overflow;
- the mean term ½(μ₁ − μ₂)² e^{−logvar} as ½r², r = ((μ₁ − μ₂)·e^{−logvar/4})·e^{−logvar/4}, so
  neither (μ₁ − μ₂)² nor e^{−logvar} is formed (each alone overflows or underflows where the
  product does not), exactly 0 when μ₁ = μ₂ (no 0·∞), and halves of the means when their
  difference overflows;
- sums of halves (½a + ½b), never halves of sums.

Gradients are never NaN either (each ``where`` branch gets inputs on which it is finite).
XLA flushes subnormal numbers to zero on CPU and GPU, so subnormal inputs act as 0 and results
below the smallest normal number (1.2e-38 in float32) may come out as 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxgen import validation

_LOG_2PI = math.log(2.0 * math.pi)


def _compute_dtype(*xs) -> jnp.dtype:
    return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def _half_expm1_minus_identity(logvar1: jax.Array, logvar2: jax.Array) -> jax.Array:
    """½(e^d − 1 − d) with d = logvar1 − logvar2: ≥ 0, exactly 0 at d = 0, never NaN."""
    d = logvar1 - logvar2  # may overflow to ±inf; only its sign and small values are used
    half_d = 0.5 * logvar1 - 0.5 * logvar2  # = ½d, and finite
    # Beyond log(max) − 1, expm1 overflows before ½e^d does; there ½e^d = (½h)·h, h = e^{d/2}.
    threshold = math.log(jnp.finfo(d.dtype).max) - 1.0
    big = d > threshold
    # Each branch gets inputs where it is finite, so `where` passes no NaN gradient either.
    h = jnp.exp(0.5 * jnp.where(big, d, threshold))
    half_expm1 = jnp.where(big, (0.5 * h) * h - 0.5, 0.5 * jnp.expm1(jnp.where(big, 0.0, d)))
    return half_expm1 - half_d


def _half_squared_over_variance(a: jax.Array, b: jax.Array, logvar: jax.Array) -> jax.Array:
    """½(a − b)² e^{−logvar} (see the module docstring): ≥ 0, 0 when a = b, never NaN."""
    delta = a - b
    zero = delta == 0
    finite = jnp.isfinite(delta)
    # |a − b| overflows only when both are beyond max/2 in size, where halving them is exact.
    diff = jnp.where(finite, delta, 0.5 * a - 0.5 * b)
    # Where a = b the result is 0 for any logvar; the unused branch gets inputs (1, 0) so that
    # neither it nor its gradient meets 0 · ∞.
    diff = jnp.where(zero, jnp.ones_like(diff), diff)
    logvar = jnp.where(zero, jnp.zeros_like(logvar), logvar)
    # e^{−logvar/4} is a normal number for |logvar| ≤ 4·87; beyond, its overflow (underflow)
    # happens only where the true result overflows (is 0) for every nonzero float32 diff.
    s = jnp.exp(-0.25 * logvar)
    r = (diff * s) * s
    half_square = (0.5 * r) * r
    half_square = jnp.where(finite, half_square, 4.0 * half_square)
    return jnp.where(zero, jnp.zeros_like(half_square), half_square)


def gaussian_kl(
    mean1: jax.Array, logvar1: jax.Array, mean2: jax.Array, logvar2: jax.Array
) -> jax.Array:
    r"""KL divergence between two diagonal Gaussians, per dimension.

    .. math::
        \mathrm{KL}(\mathcal N(\mu_1,\sigma_1^2)\,\|\,\mathcal N(\mu_2,\sigma_2^2))
        = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2}
          - \frac12

    Computed as ``½(expm1(d) − d) + ½(μ₁ − μ₂)² e^{−logvar₂}`` with ``d = logvar₁ − logvar₂``:
    ``expm1(d) − d`` is exactly 0 at ``d = 0`` (so KL(p‖p) = 0 with finite gradients), and no
    σ² or σ² ratio is formed, so it stays finite and accurate for every finite log-variance
    (see the module docstring; +inf only where the KL exceeds the dtype's range).

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
    out_dtype = jnp.result_type(mean1, logvar1, mean2, logvar2)
    mean1, logvar1, mean2, logvar2 = (
        jnp.asarray(x, _compute_dtype(out_dtype)) for x in (mean1, logvar1, mean2, logvar2)
    )
    kl = _half_expm1_minus_identity(logvar1, logvar2) + _half_squared_over_variance(
        mean1, mean2, logvar2
    )
    return kl.astype(out_dtype)


def standard_normal_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    r"""KL(N(μ, σ²) ‖ N(0, 1)) per dimension: ``−½(1 + log σ² − μ² − σ²)``.

    Evaluated as ``½(expm1(logvar) − logvar) + ½μ²``, the same quantity without cancellation
    near σ² = 1, finite wherever the true value is (see the module docstring).

    Args:
      mean: μ, any shape, floating dtype.
      logvar: log σ², broadcastable with ``mean``.

    Returns:
      Elementwise KL in nats (not reduced).
    """
    validation.check_floating("mean", mean)
    validation.check_floating("logvar", logvar)
    validation.check_broadcastable(mean=mean, logvar=logvar)
    out_dtype = jnp.result_type(mean, logvar)
    mean, logvar = (jnp.asarray(x, _compute_dtype(out_dtype)) for x in (mean, logvar))
    kl = _half_expm1_minus_identity(logvar, jnp.zeros_like(logvar)) + (0.5 * mean) * mean
    return kl.astype(out_dtype)


def gaussian_log_prob(x: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    r"""Log density of a diagonal Gaussian, per dimension.

    ``log N(x; μ, σ²) = −½(log 2π + log σ² + (x − μ)² / σ²)``.

    Args:
      x: points, any shape.
      mean: μ, broadcastable with ``x``.
      logvar: log σ², broadcastable with ``x``.

    Evaluated as ``−½(log 2π + log σ²) − ½(x − μ)² e^{−log σ²}`` with the second term formed
    without overflow (see the module docstring): finite for every finite input except where
    the density truly is below the dtype's range (−inf), and exact at x = μ for any log σ².

    Returns:
      Elementwise log density in nats (not reduced).
    """
    validation.check_floating("x", x)
    validation.check_broadcastable(x=x, mean=mean, logvar=logvar)
    out_dtype = jnp.result_type(x, mean, logvar)
    x, mean, logvar = (jnp.asarray(v, _compute_dtype(out_dtype)) for v in (x, mean, logvar))
    log_prob = -0.5 * (_LOG_2PI + logvar) - _half_squared_over_variance(x, mean, logvar)
    return log_prob.astype(out_dtype)


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
