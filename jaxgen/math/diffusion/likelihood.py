r"""The DDPM variational bound in bits per dimension (Ho et al. 2020, arXiv:2006.11239).

Negative log-likelihood bound for 8-bit data scaled to [−1, 1] (Sec. 3.3, Eq. 5):

.. math::
    L = \underbrace{\mathrm{KL}(q(x_T|x_0)\,\|\,p(x_T))}_{L_T\ (\text{prior})}
      + \sum_{t>1} \underbrace{\mathrm{KL}(q(x_{t-1}|x_t,x_0)\,\|\,p_\theta(x_{t-1}|x_t))}_{L_{t-1}}
      \underbrace{-\log p_\theta(x_0|x_1)}_{L_0\ (\text{decoder})}

Every term is reported in bits per dimension: nats averaged over the non-batch axes, divided by
log 2. In the 0-based timestep convention of :mod:`jaxgen.math.diffusion.schedules`, index
t ≥ 1 holds the paper's L_t (a KL) and index 0 holds the decoder L_0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import validation
from jaxgen.math.diffusion import process, reverse
from jaxgen.math.diffusion.samplers import EpsFn, call_eps_fn
from jaxgen.math.diffusion.schedules import Schedule
from jaxgen.math.gaussian import gaussian_kl, standard_normal_kl

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Below this |log Φ(lo) − log Φ(hi)| the difference of CDFs cancels; the midpoint rule is then
# accurate to about d²/24 relative (< 5e-6).
_MIDPOINT_THRESHOLD = -1e-2
# Below x = −tail_start (`_tail_start`), log Φ(x) is −x²/2 − log √(2π) + log(Φ(x)/φ(x)), with
# the Mills ratio Φ/φ from its asymptotic series, not jax's log_ndtr: that differentiates as
# exp(log φ(x) − log Φ(x)), a difference of two numbers near −x²/2 that loses ulp(x²/2) (in
# float32 0.03 at x = −1e3, 512 at x = −1e5), so its gradient is off by orders of magnitude in
# the deep tail. Φ(x)/φ(x) ~ (1/t) Σ_k (−1)^k (2k − 1)!! t^(−2k) with t = −x (Abramowitz &
# Stegun 26.2.12), k = 0…9, highest power first for polyval. The first omitted term,
# 19!! t^(−20), is 7e-12 relative at t = 10 and 6e-18 at t = 20: below float32 and float64
# resolution respectively.
_MILLS_SERIES = (-34459425.0, 2027025.0, -135135.0, 10395.0, -945.0, 105.0, -15.0, 3.0, -1.0, 1.0)

_DATA_HINT = (
    "The discretized decoder models 8-bit data scaled to [-1, 1]: x = 2 * uint8 / 255 - 1."
)


def _flat_mean(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=tuple(range(1, jnp.ndim(x))))


def _log1mexp(d: jax.Array) -> jax.Array:
    """log(1 − e^d) for d < 0, accurate near both 0 and −∞ (Mächler 2012)."""
    return jnp.where(d > -_LOG_2, jnp.log(-jnp.expm1(d)), jnp.log1p(-jnp.exp(d)))


def _tail_start(dtype) -> float:
    """Where log Φ switches to the Mills-ratio form: jax's log_ndtr's own series switch."""
    return 20.0 if jnp.dtype(dtype) == jnp.float64 else 10.0


def _log_mills_ratio(x: jax.Array) -> jax.Array:
    """log(Φ(x)/φ(x)) for x ≤ −`_tail_start`, from its asymptotic series in 1/x²."""
    series = jnp.polyval(jnp.asarray(_MILLS_SERIES, x.dtype), 1.0 / jnp.square(x))
    return jnp.log(series) - jnp.log(-x)


def _log_ndtr(x: jax.Array) -> jax.Array:
    """log Φ(x), with a gradient accurate to rounding at every x (see `_MILLS_SERIES`).

    Above −`_tail_start` it is jax's ``log_ndtr``; below, −x²/2 − log √(2π) + log(Φ(x)/φ(x)),
    whose gradient −x + d/dx log(Φ(x)/φ(x)) = φ(x)/Φ(x) adds terms of one sign. Each branch
    sees a clamped input (double `where`) so that the unused one cannot put a NaN into the
    gradient.
    """
    start = _tail_start(x.dtype)
    tail = x < -start
    x_tail = jnp.where(tail, x, -start)
    x_body = jnp.where(tail, -start, x)
    log_tail = -0.5 * jnp.square(x_tail) - _HALF_LOG_2PI + _log_mills_ratio(x_tail)
    return jnp.where(tail, log_tail, jax.scipy.special.log_ndtr(x_body))


def discretized_gaussian_log_likelihood(
    x: jax.Array, mean: jax.Array, log_scale: jax.Array
) -> jax.Array:
    r"""Log-probability of 8-bit data under a Gaussian discretized to 256 bins.

    Ho et al. 2020 (arXiv:2006.11239), Eq. 13: for data x ∈ {−1, −1 + 2/255, …, 1} (the 8-bit
    levels k = 0…255 at x = 2k/255 − 1),

    .. math::
        p(x) = \Phi\Big(\frac{x + 1/255 - \mu}{\sigma}\Big)
             - \Phi\Big(\frac{x - 1/255 - \mu}{\sigma}\Big)

    with the lower limit replaced by −∞ at x = −1 and the upper by +∞ at x = 1, so the 256
    probabilities sum to 1. An x between levels is scored as its nearest level
    k = round(127.5 (x + 1)), whose bin edges (k ± ½)·2/255 − 1 are shared exactly with the
    neighbouring bins. Computed with ``log_ndtr`` after reflecting each bin into the lower
    half-line (Φ(b) − Φ(a) = Φ(−a) − Φ(−b)) and ``log(1 − e^d)``; when the bin is narrow relative
    to σ (the difference of CDFs would cancel) it uses the midpoint rule
    log(2/255 · φ((x − μ)/σ)/σ). More than 10 standard deviations out (20 in float64), log Φ
    and the difference log Φ(a) − log Φ(b) are taken through the Mills ratio Φ/φ, so that the
    gradients stay accurate at any |x − μ|/σ (differentiating ``log_ndtr`` is off by orders of
    magnitude beyond |x − μ|/σ ≈ 1e3 in float32). Finite, with finite gradients, for log σ
    from −20 to 20.

    Args:
      x: data in [−1, 1] on the 8-bit grid (x = 2 · uint8 / 255 − 1), any shape.
      mean: μ, broadcastable with ``x``.
      log_scale: log σ (log standard deviation, i.e. ½ log-variance), broadcastable with ``x``.

    Returns:
      Elementwise log-probability in nats, with the broadcast shape (not reduced).
      Differentiable in ``mean`` and ``log_scale``; ``x`` is data (its gradient is zero).

    Raises:
      ValueError: if a concrete ``x`` leaves [−1, 1].
    """
    for name, v in (("x", x), ("mean", mean), ("log_scale", log_scale)):
        validation.check_floating(name, v)
    validation.check_broadcastable(x=x, mean=mean, log_scale=log_scale)
    validation.check_range("x", x, -1.0, 1.0, hint=_DATA_HINT)
    dtype = jnp.result_type(x, mean, log_scale)
    # Edges come from the integer level, not x ± 1/255, so neighbouring bins share the very
    # same float edge and the 256 probabilities telescope to 1 even when σ is below float32
    # resolution of the edges.
    level = jnp.clip(jnp.round((x + 1.0) * 127.5), 0.0, 255.0).astype(dtype)
    inv_scale = jnp.exp(-log_scale)
    upper_edge = (level + 0.5) * (2.0 / 255.0) - 1.0
    lower_edge = (level - 0.5) * (2.0 / 255.0) - 1.0
    upper = (upper_edge - mean) * inv_scale
    lower = (lower_edge - mean) * inv_scale
    # Reflect bins centred above 0 so both ends sit where Φ is small and log_ndtr is exact.
    flip = upper + lower > 0
    hi = jnp.where(flip, -lower, upper)
    lo = jnp.where(flip, -upper, lower)
    log_hi = _log_ndtr(hi)
    # Deep in the tail, d = log Φ(lo) − log Φ(hi) = (lo² − hi²)/2 + log(Φ/φ)(lo) − log(Φ/φ)(hi)
    # is not taken as a difference of two numbers near −hi²/2 (which loses ulp(hi²/2), and the
    # gradient with it): (lo² − hi²)/2 = −(hi − lo)(hi + lo)/2, with hi − lo the bin's width
    # from its edges (not from hi and lo, which would cancel) and hi + lo a sum of like signs.
    start = _tail_start(dtype)
    deep = hi < -start
    hi_deep = jnp.where(deep, hi, -start)
    lo_deep = jnp.where(deep, lo, -start)
    width = (upper_edge - lower_edge) * inv_scale
    d_deep = (
        0.5 * width * (hi_deep + lo_deep) + _log_mills_ratio(lo_deep) - _log_mills_ratio(hi_deep)
    )
    d = jnp.where(deep, d_deep, _log_ndtr(lo) - log_hi)
    use_midpoint = d > _MIDPOINT_THRESHOLD
    # The unused branch still gets gradients through `where`, so keep its input away from d = 0.
    d_safe = jnp.where(use_midpoint, -1.0, d)
    log_delta = log_hi + _log1mexp(d_safe)
    z = 0.5 * (upper + lower)
    log_midpoint = math.log(2.0 / 255.0) - log_scale - 0.5 * jnp.square(z) - _HALF_LOG_2PI
    log_interior = jnp.where(use_midpoint, log_midpoint, log_delta)
    log_cdf_upper = _log_ndtr(upper)  # lowest level: Φ(upper)
    log_sf_lower = _log_ndtr(-lower)  # highest level: 1 − Φ(lower)
    return jnp.where(
        level == 0.0, log_cdf_upper, jnp.where(level == 255.0, log_sf_lower, log_interior)
    )


def vlb_term(
    schedule: Schedule,
    x0: jax.Array,
    x_t: jax.Array,
    t: jax.Array,
    eps_pred: jax.Array,
    *,
    variance: str = "small",
    clip_x0: bool = False,
) -> jax.Array:
    r"""One term of the variational bound, in bits/dim per example.

    Ho et al. 2020 (arXiv:2006.11239), Eq. 5, for 0-based index t:

    - t ≥ 1: KL(q(x_{t−1} | x_t, x₀) ‖ p_θ(x_{t−1} | x_t)) with q from
      :func:`~jaxgen.math.diffusion.process.q_posterior` and p_θ = N(μ_θ, σ_t²) from
      :func:`~jaxgen.math.diffusion.reverse.p_mean_variance` (KL by
      :func:`jaxgen.math.gaussian.gaussian_kl`);
    - t = 0: the decoder NLL −log p_θ(x₀ | x₁) with
      :func:`discretized_gaussian_log_likelihood` at mean μ_θ and scale σ₀.

    Args:
      schedule: the diffusion schedule.
      x0: x₀, data ``[B, ...]`` in [−1, 1] on the 8-bit grid.
      x_t: x_t ~ q(x_t | x₀), same shape.
      t: 0-based timesteps ``[B]`` (int).
      eps_pred: ε_θ(x_t, t), same shape as ``x0``.
      variance: σ_t², ``"small"`` (β̃_t) or ``"large"`` (β_t) (keyword-only).
      clip_x0: clip x̂₀ to [−1, 1] in μ_θ (keyword-only). Off by default: clipping makes μ_θ
        a nonlinear function of ε_θ; Ho et al.'s bpd evaluation turns it on.

    Returns:
      Per-example term in bits/dim, ``[B]``.
    """
    validation.check_range("x0", x0, -1.0, 1.0, hint=_DATA_HINT)
    true_mean, _, true_log_var = process.q_posterior(schedule, x0, x_t, t)
    mean, _, log_var, _ = reverse.p_mean_variance(
        schedule, x_t, t, eps_pred, variance=variance, clip_x0=clip_x0
    )
    kl = _flat_mean(gaussian_kl(true_mean, true_log_var, mean, log_var)) / _LOG_2
    decoder_nll = -_flat_mean(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)) / _LOG_2
    return jnp.where(t == 0, decoder_nll, kl)


def prior_bpd(schedule: Schedule, x0: jax.Array) -> jax.Array:
    r"""The prior term L_T = KL(q(x_T | x₀) ‖ N(0, I)) in bits/dim per example.

    q(x_T | x₀) = N(√ᾱ_T x₀, (1 − ᾱ_T) I) (Ho et al. 2020, arXiv:2006.11239, Eq. 5); ᾱ_T is the
    last table entry. Independent of θ, and about 1e-5 bits/dim for the standard schedules.

    Args:
      schedule: the diffusion schedule.
      x0: x₀, data ``[B, ...]``.

    Returns:
      ``[B]`` bits/dim.
    """
    process.check_x("x0", x0)
    dtype = jnp.result_type(x0)
    mean = schedule.sqrt_alphas_cumprod[-1].astype(dtype) * x0
    log_var = jnp.broadcast_to(schedule.log_one_minus_alphas_cumprod[-1].astype(dtype), x0.shape)
    return _flat_mean(standard_normal_kl(mean, log_var)) / _LOG_2


def bits_per_dim(
    eps_fn: EpsFn,
    schedule: Schedule,
    x0: jax.Array,
    key: jax.Array,
    *,
    variance: str = "small",
    num_timesteps_sampled: int | None = None,
    clip_x0: bool = False,
    return_terms: bool = False,
) -> dict[str, jax.Array]:
    r"""Variational bound on −log p(x₀) in bits/dim (Ho et al. 2020, arXiv:2006.11239, Eq. 5).

    total = prior + decoder + diffusion, with prior = L_T (:func:`prior_bpd`), decoder = L_0
    and diffusion = Σ_{t=1}^{T−1} L_t (0-based; :func:`vlb_term`). Each L_t uses one x_t ~
    q(x_t | x₀) with noise from ``fold_in``-derived keys, so each term is an unbiased one-sample
    estimate of its expectation over q.

    - ``num_timesteps_sampled=None``: every term, t = 0…T−1, in one ``lax.scan`` (T calls of
      ``eps_fn``).
    - ``num_timesteps_sampled=K``: the decoder L_0 exactly as above, and the KL sum by the
      unbiased Monte Carlo estimate (T − 1) · (1/K) Σ_k L_{t_k}, t_k ~ Uniform{1, …, T−1}
      i.i.d. per example (K + 1 calls of ``eps_fn``). This is the T·mean estimator with the
      decoder term, which dominates the variance, stratified out.

    Args:
      eps_fn: ε_θ(x, t) with ``x: [B, ...]`` and ``t: int32 [B]``.
      schedule: the diffusion schedule.
      x0: data ``[B, ...]`` in [−1, 1] on the 8-bit grid.
      key: PRNG key; split into the timestep and noise keys (never drawn from directly).
      variance: σ_t², ``"small"`` or ``"large"`` (keyword-only).
      num_timesteps_sampled: None for the full sum, or K ≥ 1 (keyword-only).
      clip_x0: clip x̂₀ in μ_θ (keyword-only; see :func:`vlb_term`).
      return_terms: also return every term (full mode only; keyword-only).

    Returns:
      A dict of per-example bits/dim, each ``[B]``: ``"total"``, ``"prior"``, ``"decoder"``,
      ``"diffusion"``; with ``return_terms``, also ``"terms"``: ``[B, T]`` with
      ``terms[:, t]`` = L_t (so ``terms[:, 0]`` is the decoder).
    """
    process.check_x("x0", x0)
    reverse._check_variance(variance)
    validation.check_range("x0", x0, -1.0, 1.0, hint=_DATA_HINT)
    num_timesteps = schedule.num_timesteps
    batch = np.shape(x0)[0]
    dtype = jnp.result_type(x0)
    t_key, noise_key = jax.random.split(key)

    def term(t_batch, noise):
        x_t = process.q_sample_from_noise(schedule, x0, t_batch, noise)
        eps = call_eps_fn(eps_fn, x_t, t_batch)
        return vlb_term(
            schedule, x0, x_t, t_batch, eps, variance=variance, clip_x0=clip_x0
        )

    prior = prior_bpd(schedule, x0)
    if num_timesteps_sampled is None:

        def full_step(carry, t):
            noise = jax.random.normal(jax.random.fold_in(noise_key, t), jnp.shape(x0), dtype)
            return carry, term(jnp.full((batch,), t, jnp.int32), noise)

        _, terms = jax.lax.scan(full_step, None, jnp.arange(num_timesteps, dtype=jnp.int32))
        terms = terms.T  # [B, T]
        decoder, diffusion = terms[:, 0], jnp.sum(terms[:, 1:], axis=1)
        out = {
            "total": prior + decoder + diffusion,
            "prior": prior,
            "decoder": decoder,
            "diffusion": diffusion,
        }
        if return_terms:
            out["terms"] = terms
        return out

    num = num_timesteps_sampled
    if isinstance(num, bool) or not isinstance(num, int | np.integer) or num < 1:
        raise ValueError(f"num_timesteps_sampled must be None or an int >= 1, got {num!r}.")
    if return_terms:
        raise ValueError("return_terms needs the full sum (num_timesteps_sampled=None).")
    # Same key derivation as the full mode at t = 0, so both modes share the decoder term.
    decoder_noise = jax.random.normal(jax.random.fold_in(noise_key, 0), jnp.shape(x0), dtype)
    decoder = term(jnp.zeros((batch,), jnp.int32), decoder_noise)
    sampled_t = jax.random.randint(t_key, (num, batch), 1, num_timesteps, dtype=jnp.int32)
    # Offset by T so these noise keys never coincide with the full mode's fold_in(noise_key, t).
    sample_noise_key = jax.random.fold_in(noise_key, num_timesteps)

    def sampled_step(carry, inputs):
        k, t_batch = inputs
        noise = jax.random.normal(jax.random.fold_in(sample_noise_key, k), jnp.shape(x0), dtype)
        return carry + term(t_batch, noise), None

    # The carry starts as a zero shaped (and, inside shard_map, typed) like a term's value.
    total_sampled, _ = jax.lax.scan(
        sampled_step, jnp.zeros_like(decoder), (jnp.arange(num, dtype=jnp.int32), sampled_t)
    )
    diffusion = (num_timesteps - 1) * total_sampled / num
    return {
        "total": prior + decoder + diffusion,
        "prior": prior,
        "decoder": decoder,
        "diffusion": diffusion,
    }
