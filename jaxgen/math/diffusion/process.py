"""The DDPM forward process, its posterior, the ε/x₀ parameterizations and the training loss.

Ho et al. 2020, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239.

Conventions: ``x0``/``x_t`` have shape ``[B, ...]`` (batch first, any trailing shape, e.g.
``[B, H, W, C]``); ``t`` is an integer array ``[B]`` of 0-based timesteps in ``{0, …, T−1}``,
one per example, where index ``t`` is the paper's step ``t + 1`` (see
:mod:`jaxgen.math.diffusion.schedules`). Per-timestep coefficients broadcast over the trailing
axes. Timestep values are range-checked on concrete inputs; under ``jax.jit``, where they cannot
be, an out-of-range timestep yields NaN rather than a silently wrapped or clamped table entry.

Timestep dtypes: every standard integer dtype (:data:`TIMESTEP_DTYPES`: int8/16/32/64,
uint8/16/32/64) gives exactly the result of int32; any other dtype (floating, bool, int4, …) is
a ``TypeError``. The range test is done in t's own dtype without converting T into it, so a
small dtype (int8 with T = 1000) neither overflows nor wraps. (With 64-bit mode off, JAX itself
narrows int64/uint64 arguments of a jitted function to 32 bits before this code sees them.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import validation
from jaxgen.math.diffusion.schedules import Schedule

VARIANCE_KINDS = ("small", "large")
TIMESTEP_DTYPES = tuple(
    np.dtype(d) for d in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
)


def _check_x(name: str, x) -> None:
    validation.check_floating(name, x)
    if np.ndim(x) < 1:
        raise ValueError(f"{name} must have a leading batch axis, shape [B, ...], got a scalar.")


def _check_timesteps(schedule: Schedule, t, batch_size: int | None) -> None:
    """t must be an integer array [B] with values in {0, …, T−1} (values checked if concrete).

    ``batch_size=None`` accepts any length B.
    """
    dtype = np.dtype(t.dtype if hasattr(t, "dtype") else np.asarray(t).dtype)
    if dtype not in TIMESTEP_DTYPES:
        raise TypeError(
            f"t must be an integer array of 0-based timesteps, got dtype {dtype}; use one of "
            f"{', '.join(d.name for d in TIMESTEP_DTYPES)}, e.g. `jnp.full((batch,), t, "
            "jnp.int32)`."
        )
    if np.ndim(t) != 1 or (batch_size is not None and np.shape(t) != (batch_size,)):
        expected = "[B]" if batch_size is None else f"[B] = ({batch_size},)"
        raise ValueError(
            f"t must have shape {expected}, one timestep per example, got shape {np.shape(t)}."
        )
    num_timesteps = schedule.num_timesteps
    validation.check_range(
        "t", t, 0, num_timesteps - 1,
        hint=f"Timesteps are 0-based indices into a schedule of T = {num_timesteps} steps.",
    )


def _check_variance(variance: str) -> None:
    if variance not in VARIANCE_KINDS:
        raise ValueError(
            f"unknown variance {variance!r}; expected one of {', '.join(VARIANCE_KINDS)} "
            "(fixed small β̃_t or fixed large β_t, Ho et al. 2020)."
        )


def _gather(table: jax.Array, t: jax.Array) -> jax.Array:
    """table[t], NaN where t is outside {0, …, T−1}.

    Traced timesteps cannot be range-checked, and a plain gather would wrap negative indices
    and clamp large ones into plausible-looking values; NaN makes the mistake visible.
    """
    t = jnp.asarray(t)
    num_timesteps = table.shape[0]
    info = jnp.iinfo(t.dtype)
    # Compare in t's dtype, and only against bounds it can hold: converting T = 1000 to int8
    # would wrap, and every timestep would then look out of range.
    valid = jnp.ones(jnp.shape(t), bool)
    if info.min < 0:
        valid &= t >= 0
    if info.max >= num_timesteps:
        valid &= t < num_timesteps
    index = jnp.where(valid, t, 0).astype(jnp.int32)  # valid values are < T ≤ 2³¹
    return jnp.where(valid, jnp.take(table, index, axis=0), jnp.nan)


def _extract(table: jax.Array, t: jax.Array, x: jax.Array) -> jax.Array:
    """table[t] reshaped to [B, 1, ..., 1] and cast to x's dtype, to broadcast against x."""
    values = _gather(table, t).astype(jnp.result_type(x))
    return values.reshape(values.shape + (1,) * (jnp.ndim(x) - 1))


def sample_timesteps(key: jax.Array, schedule: Schedule, batch_size: int) -> jax.Array:
    """Draw t ~ Uniform{0, …, T−1} per example, as used by L_simple (Ho et al. 2020, Alg. 1).

    Args:
      key: a PRNG key, used once.
      schedule: the diffusion schedule (gives T).
      batch_size: B.

    Returns:
      int32 timesteps ``[B]``.
    """
    return jax.random.randint(key, (batch_size,), 0, schedule.num_timesteps, dtype=jnp.int32)


def q_sample_from_noise(
    schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array
) -> jax.Array:
    r"""Forward process with given noise: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε.

    A sample of q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I) (Ho et al. 2020, arXiv:2006.11239,
    Eq. 4).

    Args:
      schedule: the diffusion schedule (ᾱ_t).
      x0: x₀, data ``[B, ...]``.
      t: 0-based timesteps ``[B]`` (int).
      noise: ε ~ N(0, I), same shape as ``x0``.

    Returns:
      x_t, same shape and dtype as ``x0``.
    """
    _check_x("x0", x0)
    validation.check_floating("noise", noise)
    validation.check_same_shape(x0=x0, noise=noise)
    _check_timesteps(schedule, t, np.shape(x0)[0])
    return (
        _extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
        + _extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise
    )


def q_sample(
    schedule: Schedule, x0: jax.Array, t: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    r"""Sample x_t ~ q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I), drawing ε from ``key``.

    Ho et al. 2020 (arXiv:2006.11239), Eq. 4: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε, ε ~ N(0, I).

    Args:
      schedule: the diffusion schedule (ᾱ_t).
      x0: x₀, data ``[B, ...]``.
      t: 0-based timesteps ``[B]`` (int).
      key: a PRNG key for ε, used once.

    Returns:
      ``(x_t, noise)``: the sample and the ε used (the L_simple regression target), both with
      the shape and dtype of ``x0``.
    """
    _check_x("x0", x0)
    noise = jax.random.normal(key, jnp.shape(x0), dtype=jnp.result_type(x0))
    return q_sample_from_noise(schedule, x0, t, noise), noise


def q_posterior(
    schedule: Schedule, x0: jax.Array, x_t: jax.Array, t: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Mean and variance of the forward-process posterior q(x_{t−1} | x_t, x₀).

    Ho et al. 2020 (arXiv:2006.11239), Eqs. 6–7:

    .. math::
        q(x_{t-1}|x_t,x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I),\quad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t,\quad
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0
            + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t

    At index 0 (the paper's t = 1) ᾱ_{t−1} = 1, so μ̃ = x₀ and β̃ = 0; the returned
    log-variance is then log β̃ of index 1 (clipped), as in the reference implementation.

    Args:
      schedule: the diffusion schedule.
      x0: x₀, ``[B, ...]``.
      x_t: x_t, same shape as ``x0``.
      t: 0-based timesteps ``[B]`` (int).

    Returns:
      ``(mean, variance, log_variance_clipped)``: μ̃_t, β̃_t and log β̃_t (clipped), each with
      the shape of ``x_t``.
    """
    _check_x("x0", x0)
    validation.check_floating("x_t", x_t)
    validation.check_same_shape(x0=x0, x_t=x_t)
    _check_timesteps(schedule, t, np.shape(x_t)[0])
    mean = (
        _extract(schedule.posterior_mean_coef1, t, x_t) * x0
        + _extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    )
    shape = jnp.shape(x_t)
    variance = jnp.broadcast_to(_extract(schedule.posterior_variance, t, x_t), shape)
    log_variance = jnp.broadcast_to(
        _extract(schedule.posterior_log_variance_clipped, t, x_t), shape
    )
    return mean, variance, log_variance


def predict_x0_from_eps(
    schedule: Schedule, x_t: jax.Array, t: jax.Array, eps: jax.Array
) -> jax.Array:
    r"""Invert the forward process for x₀: x̂₀ = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t.

    Evaluated as ``√(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε`` (Ho et al. 2020, arXiv:2006.11239, Eq. 4
    solved for x₀).

    Args:
      schedule: the diffusion schedule.
      x_t: x_t, ``[B, ...]``.
      t: 0-based timesteps ``[B]`` (int).
      eps: ε (true or predicted noise), same shape as ``x_t``.

    Returns:
      x̂₀, same shape as ``x_t``.
    """
    _check_x("x_t", x_t)
    validation.check_floating("eps", eps)
    validation.check_same_shape(x_t=x_t, eps=eps)
    _check_timesteps(schedule, t, np.shape(x_t)[0])
    return (
        _extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t
        - _extract(schedule.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
    )


def predict_eps_from_x0(
    schedule: Schedule, x_t: jax.Array, t: jax.Array, x0: jax.Array
) -> jax.Array:
    r"""The noise consistent with (x_t, x₀): ε = (x_t − √ᾱ_t x₀)/√(1 − ᾱ_t).

    Evaluated as ``(√(1/ᾱ_t) x_t − x₀)/√(1/ᾱ_t − 1)``; the inverse of
    :func:`predict_x0_from_eps`.

    Args:
      schedule: the diffusion schedule.
      x_t: x_t, ``[B, ...]``.
      t: 0-based timesteps ``[B]`` (int).
      x0: x₀ (e.g. a clipped prediction), same shape as ``x_t``.

    Returns:
      ε, same shape as ``x_t``.
    """
    _check_x("x_t", x_t)
    validation.check_floating("x0", x0)
    validation.check_same_shape(x_t=x_t, x0=x0)
    _check_timesteps(schedule, t, np.shape(x_t)[0])
    return (_extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / _extract(
        schedule.sqrt_recipm1_alphas_cumprod, t, x_t
    )


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
    _check_x("x_t", x_t)
    validation.check_floating("eps", eps)
    validation.check_same_shape(x_t=x_t, eps=eps)
    _check_timesteps(schedule, t, np.shape(x_t)[0])
    return _extract(schedule.sqrt_recip_alphas, t, x_t) * (
        x_t - _extract(schedule.eps_coef, t, x_t) * eps
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
    _check_variance(variance)
    _check_x("x_t", x_t)
    _check_timesteps(schedule, t, np.shape(x_t)[0])
    if variance == "small":
        var_table, log_table = schedule.posterior_variance, schedule.posterior_log_variance_clipped
    else:
        var_table, log_table = schedule.large_variance, schedule.large_log_variance
    return _extract(var_table, t, x_t), _extract(log_table, t, x_t)


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
        _extract(schedule.posterior_mean_coef1, t, x_t) * x0_pred
        + _extract(schedule.posterior_mean_coef2, t, x_t) * x_t
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
    _check_x("eps", eps)
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
    _check_variance(variance)
    _check_timesteps(schedule, t, None)
    if variance == "small":
        log_var = schedule.posterior_log_variance_clipped
    else:
        log_var = schedule.large_log_variance
    weights = 0.5 * jnp.square(schedule.eps_coef * schedule.sqrt_recip_alphas) * jnp.exp(-log_var)
    return _gather(weights, t)
