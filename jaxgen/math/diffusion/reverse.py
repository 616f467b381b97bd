"""The DDPM reverse process p_θ (its mean and variance from a noise prediction) and the
training objectives: the simple loss and the weight that turns it into the VLB term.

Ho et al. 2020, arXiv:2006.11239. Conventions (shapes, 0-based timesteps, dtype and range
checks) as in :mod:`jaxgen.math.diffusion.process`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import validation
from jaxgen.math.diffusion.process import (
    check_timesteps,
    check_x,
    extract,
    gather,
    predict_x0_from_eps,
)
from jaxgen.math.diffusion.schedules import Schedule

VARIANCE_KINDS = ("small", "large")


def _check_variance(variance: str) -> None:
    if variance not in VARIANCE_KINDS:
        raise ValueError(
            f"unknown variance {variance!r}; expected one of {', '.join(VARIANCE_KINDS)} "
            "(fixed small β̃_t or fixed large β_t, Ho et al. 2020)."
        )


def _variance_tables(schedule: Schedule, variance: str) -> tuple[jax.Array, jax.Array]:
    """The schedule's ``(σ_t², log σ_t²)`` tables ``[T]`` for a variance kind."""
    _check_variance(variance)
    if variance == "small":
        return schedule.posterior_variance, schedule.posterior_log_variance_clipped
    return schedule.large_variance, schedule.large_log_variance


def model_mean_from_eps(
    schedule: Schedule, x_t: jax.Array, t: jax.Array, eps: jax.Array
) -> jax.Array:
    r"""Reverse-process mean from predicted noise (Ho et al. 2020, arXiv:2006.11239, Eq. 11).

    .. math::
        \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t
            - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big)

    This equals the posterior mean μ̃_t(x̂₀, x_t) at x̂₀ = :func:`predict_x0_from_eps`
    (x_t, t, ε_θ), so with the true noise it is exactly μ̃_t(x₀, x_t).

    Args:
      schedule: the diffusion schedule (α_t, β_t, ᾱ_t).
      x_t: x_t, ``[B, ...]``.
      t: 0-based timesteps ``[B]`` (int).
      eps: ε_θ(x_t, t), same shape as ``x_t``.

    Returns:
      μ_θ(x_t, t), same shape as ``x_t``.
    """
    check_x("x_t", x_t)
    validation.check_floating("eps", eps)
    validation.check_same_shape(x_t=x_t, eps=eps)
    check_timesteps(schedule, t, np.shape(x_t)[0])
    return extract(schedule.sqrt_recip_alphas, t, x_t) * (
        x_t - extract(schedule.eps_coef, t, x_t) * eps
    )


def model_variance(
    schedule: Schedule, t: jax.Array, x_t: jax.Array, *, variance: str = "small"
) -> tuple[jax.Array, jax.Array]:
    r"""Fixed reverse-process variance σ_t² (Ho et al. 2020, arXiv:2006.11239, Sec. 3.2).

    ``"small"``: σ_t² = β̃_t (optimal for a deterministic x₀), log-variance clipped at index 0.
    ``"large"``: σ_t² = β_t (optimal for x₀ ~ N(0, I)), with the index-0 entry replaced by
    β̃ of index 1 (Nichol & Dhariwal 2021, arXiv:2102.09672) for a better decoder likelihood.

    Args:
      schedule: the diffusion schedule.
      t: 0-based timesteps ``[B]`` (int).
      x_t: x_t ``[B, ...]``, used for its shape and dtype.
      variance: ``"small"`` or ``"large"`` (keyword-only).

    Returns:
      ``(variance, log_variance)``, each ``[B, 1, ..., 1]`` (broadcastable to ``x_t``).
    """
    check_x("x_t", x_t)
    check_timesteps(schedule, t, np.shape(x_t)[0])
    var_table, log_table = _variance_tables(schedule, variance)
    return extract(var_table, t, x_t), extract(log_table, t, x_t)


def p_mean_variance(
    schedule: Schedule,
    x_t: jax.Array,
    t: jax.Array,
    eps: jax.Array,
    *,
    variance: str = "small",
    clip_x0: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    r"""Parameters of p_θ(x_{t−1} | x_t) = N(μ_θ, σ_t² I) from predicted noise.

    μ_θ = μ̃_t(x̂₀, x_t) with x̂₀ = :func:`predict_x0_from_eps` (optionally clipped to
    [−1, 1], which keeps samples of [−1, 1]-scaled images in range; without clipping it equals
    :func:`model_mean_from_eps`). σ_t² from :func:`model_variance`.

    Args:
      schedule: the diffusion schedule.
      x_t: x_t, ``[B, ...]``.
      t: 0-based timesteps ``[B]`` (int).
      eps: ε_θ(x_t, t), same shape as ``x_t``.
      variance: ``"small"`` (β̃_t) or ``"large"`` (β_t) (keyword-only).
      clip_x0: clip x̂₀ to [−1, 1] before forming the mean (keyword-only).

    Returns:
      ``(mean, variance, log_variance, x0_pred)``; ``mean`` and ``x0_pred`` have the shape of
      ``x_t``, the variances are ``[B, 1, ..., 1]``.
    """
    var, log_var = model_variance(schedule, t, x_t, variance=variance)
    x0_pred = predict_x0_from_eps(schedule, x_t, t, eps)
    if clip_x0:
        x0_pred = jnp.clip(x0_pred, -1.0, 1.0)
    mean = (
        extract(schedule.posterior_mean_coef1, t, x_t) * x0_pred
        + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    )
    return mean, var, log_var, x0_pred


def l_simple(eps: jax.Array, eps_pred: jax.Array) -> jax.Array:
    r"""L_simple per example (Ho et al. 2020, arXiv:2006.11239, Eq. 14).

    .. math::
        L_\text{simple} = \mathrm{mean}_d\,(\epsilon - \epsilon_\theta(x_t, t))_d^2

    averaged over all non-batch axes (so the scale does not depend on the image size). The
    caller averages over the batch, with t ~ Uniform{0, …, T−1} (:func:`sample_timesteps`) and
    x_t from :func:`q_sample`.

    Args:
      eps: ε, the noise used to form x_t, ``[B, ...]``.
      eps_pred: ε_θ(x_t, t), same shape.

    Returns:
      Per-example loss ``[B]``.
    """
    check_x("eps", eps)
    validation.check_floating("eps_pred", eps_pred)
    validation.check_same_shape(eps=eps, eps_pred=eps_pred)
    sq = optax.losses.squared_error(eps_pred, eps)
    return jnp.mean(sq, axis=tuple(range(1, sq.ndim)))


def vlb_weight(schedule: Schedule, t: jax.Array, *, variance: str = "small") -> jax.Array:
    r"""Weight λ_t turning the ε squared error into the variational-bound term.

    With μ_θ from :func:`model_mean_from_eps`, μ̃_t − μ_θ = β_t/(√α_t √(1−ᾱ_t)) (ε_θ − ε), so
    for t ≥ 1 (0-based) the KL term of Ho et al. 2020 (arXiv:2006.11239, Eq. 12) is, per
    dimension,

    .. math::
        \mathrm{KL}_t = \lambda_t (\epsilon - \epsilon_\theta)^2 + c_t,\qquad
        \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}

    with c_t = ½(β̃_t/σ_t² − 1 − log(β̃_t/σ_t²)) independent of θ (0 for ``"small"``). At
    index 0, λ₀ is the weight of the continuous Gaussian decoder −log N(x₀; μ_θ, σ₀²) (up to a
    constant), not of the discretized decoder used for bits/dim.

    Args:
      schedule: the diffusion schedule.
      t: 0-based timesteps ``[B]`` (int).
      variance: σ_t², ``"small"`` or ``"large"`` (keyword-only).

    Returns:
      λ_t in nats per squared unit of noise, ``[B]``.
    """
    check_timesteps(schedule, t, None)
    _, log_var = _variance_tables(schedule, variance)
    weights = 0.5 * jnp.square(schedule.eps_coef * schedule.sqrt_recip_alphas) * jnp.exp(-log_var)
    return gather(weights, t)
