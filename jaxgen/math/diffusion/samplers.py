"""Samplers for the reverse process: ancestral DDPM and DDIM.

Both are pure functions over ``jax.lax.scan``, usable inside ``jax.jit``. They take the starting
noise ``x_T`` explicitly (so a fixed ``x_T`` gives reproducible chains) and a key from which the
per-step noise is derived as ``jax.random.fold_in(key, t)`` for each 0-based timestep ``t``; the
key itself is never used to draw. The key is either one key for the whole batch (step t draws
the noise of all ``[B, ...]`` at once from ``fold_in(key, t)``) or a batch of keys ``[B]``, one
per example (e.g. from :func:`jaxgen.training.keys.per_example_keys`): example i then draws its
noise ``[...]`` from ``fold_in(key[i], t)``, so its sample depends only on its own key and
``x_T[i]``, not on the batch it is sampled in or how that batch is split over devices. The
noise predictor is any callable
``eps_fn(x, t) -> eps`` with ``x: [B, ...]``, ``t: int32 [B]`` (0-based timesteps, see
:mod:`jaxgen.math.diffusion.schedules`) and ``eps`` shaped like ``x``; close over model
parameters, e.g. ``lambda x, t: model.apply(params, x, t)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import validation
from jaxgen.math.diffusion import reverse
from jaxgen.math.diffusion.schedules import Schedule

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


def call_eps_fn(eps_fn: EpsFn, x: jax.Array, t: jax.Array) -> jax.Array:
    """Call ``eps_fn(x, t)`` and check (statically) that it returns noise shaped like ``x``.

    Args:
      eps_fn: the noise predictor ε_θ.
      x: x_t, ``[B, ...]``.
      t: int32 timesteps ``[B]``.

    Returns:
      ε_θ(x, t), cast to the dtype of ``x`` so that scan carries keep one dtype.
    """
    eps = eps_fn(x, t)
    if np.shape(eps) != np.shape(x):
        raise ValueError(
            f"eps_fn must return noise shaped like x: got {np.shape(eps)} for x of shape "
            f"{np.shape(x)}."
        )
    validation.check_floating("eps_fn(x, t)", eps)
    return eps.astype(jnp.result_type(x))


def _check_start(x_T) -> None:
    validation.check_floating("x_T", x_T)
    if np.ndim(x_T) < 1:
        raise ValueError("x_T must have a leading batch axis, shape [B, ...], got a scalar.")


def _is_key_batch(key, batch: int) -> bool:
    """Whether ``key`` is one key per example ``[B]`` (True) or a single key (False).

    Typed keys (``jax.random.key``) have shape ``()`` alone and ``[B]`` batched; raw uint32
    keys (``jax.random.PRNGKey``) have shape ``[k]`` alone and ``[B, k]`` batched.
    """
    typed = jax.dtypes.issubdtype(jnp.result_type(key), jax.dtypes.prng_key)
    rank = np.ndim(key) - (0 if typed else 1)
    if rank not in (0, 1):
        raise ValueError(
            f"key must be a single PRNG key or one key per example, shape [B]; got a key array "
            f"of shape {np.shape(key)}."
        )
    if rank == 1 and np.shape(key)[0] != batch:
        raise ValueError(
            f"a batch of keys needs one key per example: got {np.shape(key)[0]} keys for a "
            f"batch of {batch}."
        )
    return rank == 1


def _step_noise(key: jax.Array, t: jax.Array, shape, dtype, per_example: bool) -> jax.Array:
    """Standard normal noise of ``shape`` ``[B, ...]`` for timestep ``t``: from
    ``fold_in(key, t)`` for a single key, or row i from ``fold_in(key[i], t)`` for keys ``[B]``
    (``per_example``)."""
    if per_example:
        draw = lambda k: jax.random.normal(jax.random.fold_in(k, t), shape[1:], dtype)
        return jax.vmap(draw)(key)
    return jax.random.normal(jax.random.fold_in(key, t), shape, dtype)


def ddpm_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    x_T: jax.Array,
    key: jax.Array,
    *,
    variance: str = "small",
    clip_x0: bool = True,
) -> jax.Array:
    r"""Ancestral sampling (Ho et al. 2020, arXiv:2006.11239, Algorithm 2).

    For t = T−1, …, 0 (0-based):

    .. math::
        x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z,\qquad z \sim \mathcal N(0, I),

    with μ_θ = μ̃_t(x̂₀, x_t), x̂₀ = (x_t − √(1−ᾱ_t) ε_θ(x_t, t))/√ᾱ_t (clipped to [−1, 1] if
    ``clip_x0``; unclipped this is :func:`~jaxgen.math.diffusion.reverse.model_mean_from_eps`),
    σ_t² = β̃_t (``"small"``) or β_t (``"large"``), and no noise at the last step (index 0),
    which returns μ_θ(x₁, 1).

    Args:
      eps_fn: ε_θ(x, t) with ``x: [B, ...]`` and ``t: int32 [B]``, returning ``[B, ...]``.
      schedule: the diffusion schedule (T steps).
      x_T: the starting noise x_T ~ N(0, I), ``[B, ...]`` (e.g. ``[B, H, W, C]``).
      key: PRNG key for the per-step noise, one key (step t draws from ``fold_in(key, t)``)
        or one per example, ``[B]`` (example i draws from ``fold_in(key[i], t)``).
      variance: ``"small"`` (β̃_t) or ``"large"`` (β_t) (keyword-only).
      clip_x0: clip the predicted x̂₀ to [−1, 1] at every step (for data scaled to
        [−1, 1]; keyword-only).

    Returns:
      The sample x₀, with the shape and dtype of ``x_T``. T calls of ``eps_fn``.
    """
    reverse._check_variance(variance)
    _check_start(x_T)
    batch = np.shape(x_T)[0]
    per_example = _is_key_batch(key, batch)

    def step(x, t):
        t_batch = jnp.full((batch,), t, jnp.int32)
        eps = call_eps_fn(eps_fn, x, t_batch)
        mean, _, log_var, _ = reverse.p_mean_variance(
            schedule, x, t_batch, eps, variance=variance, clip_x0=clip_x0
        )
        noise = _step_noise(key, t, jnp.shape(x), jnp.result_type(x), per_example)
        # x₀ is the mean of the decoder, not a draw from it (Ho et al., Algorithm 2, z = 0).
        scale = jnp.where(t > 0, jnp.exp(0.5 * log_var), 0.0).astype(jnp.result_type(x))
        return mean + scale * noise, None

    timesteps = jnp.arange(schedule.num_timesteps - 1, -1, -1, dtype=jnp.int32)
    x0, _ = jax.lax.scan(step, x_T, timesteps)
    return x0


def ddim_timesteps(
    num_timesteps: int, *, num_steps: int | None = None, timesteps: Sequence[int] | None = None
) -> np.ndarray:
    """The increasing subsequence τ₁ < … < τ_S of 0-based timesteps a DDIM chain visits.

    ``num_steps`` picks S timesteps evenly spaced from 0 to T−1 (both ends included, rounded to
    integers; S = 1 gives [T−1]); ``timesteps`` passes them explicitly; with neither, all T.

    Args:
      num_timesteps: T.
      num_steps: S, 1 ≤ S ≤ T (keyword-only).
      timesteps: an explicit strictly increasing sequence of ints in [0, T−1] (keyword-only).

    Returns:
      int32 NumPy array ``[S]``, strictly increasing.

    Raises:
      ValueError: if both are given, or they are out of range, empty, or not increasing.
    """
    if num_steps is not None and timesteps is not None:
        raise ValueError("pass either num_steps or timesteps to DDIM, not both.")
    if timesteps is None:
        if num_steps is None:
            return np.arange(num_timesteps, dtype=np.int32)
        if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer):
            raise TypeError(f"num_steps must be an int, got {num_steps!r}.")
        if not 1 <= num_steps <= num_timesteps:
            raise ValueError(
                f"num_steps must be between 1 and T = {num_timesteps}, got {num_steps}."
            )
        if num_steps == 1:
            return np.array([num_timesteps - 1], np.int32)
        # Spacing ≥ 1 with each value within 0.5 of its rounding keeps them distinct.
        return np.round(np.linspace(0, num_timesteps - 1, num_steps)).astype(np.int32)
    if isinstance(timesteps, jax.core.Tracer):
        raise TypeError("DDIM timesteps must be concrete (a Python sequence or NumPy array).")
    ts = np.asarray(timesteps)
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {ts.shape}.")
    if not np.issubdtype(ts.dtype, np.integer):
        raise TypeError(f"timesteps must be integers, got dtype {ts.dtype}.")
    if ts.min() < 0 or ts.max() > num_timesteps - 1:
        raise ValueError(
            f"timesteps must lie in [0, T-1] = [0, {num_timesteps - 1}] (0-based), got values "
            f"in [{ts.min()}, {ts.max()}]."
        )
    ts = ts.astype(np.int64)  # np.diff of an unsigned dtype wraps: [5, 3] would pass as rising
    if np.any(np.diff(ts) <= 0):
        raise ValueError(f"timesteps must be strictly increasing, got {ts.tolist()}.")
    return ts.astype(np.int32)


def ddim_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    x_T: jax.Array,
    key: jax.Array,
    *,
    num_steps: int | None = None,
    timesteps: Sequence[int] | None = None,
    eta: float = 0.0,
    clip_x0: bool = True,
) -> jax.Array:
    r"""DDIM sampling (Song et al. 2021, "Denoising Diffusion Implicit Models", arXiv:2010.02502).

    Over the timesteps τ_S > … > τ₁ of :func:`ddim_timesteps`, with ᾱ_prev = ᾱ at the next
    smaller τ (and 1 after τ₁), Eq. 12:

    .. math::
        x_{prev} = \sqrt{\bar\alpha_{prev}}\,\hat x_0
            + \sqrt{1-\bar\alpha_{prev}-\sigma^2}\,\epsilon_\theta(x_t, t) + \sigma z,\quad
        \sigma = \eta\sqrt{\frac{1-\bar\alpha_{prev}}{1-\bar\alpha_t}}
                 \sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{prev}}}

    with x̂₀ = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t. η = 0 is the deterministic DDIM; η = 1 with all T
    timesteps is ancestral DDPM with σ_t² = β̃_t. With ``clip_x0``, x̂₀ is clipped to [−1, 1]
    and ε_θ recomputed from it so the two stay consistent. The last step returns x̂₀. The
    chain starts from ``x_T`` at the largest τ (normally T−1).

    Args:
      eps_fn: ε_θ(x, t) with ``x: [B, ...]`` and ``t: int32 [B]``, returning ``[B, ...]``.
      schedule: the diffusion schedule (T steps).
      x_T: the starting noise, ``[B, ...]``.
      key: PRNG key for the per-step noise (used only when η > 0), one key (step τ draws from
        ``fold_in(key, τ)``) or one per example, ``[B]`` (example i draws from
        ``fold_in(key[i], τ)``).
      num_steps: S evenly spaced timesteps (keyword-only; exclusive with ``timesteps``).
      timesteps: explicit increasing 0-based timesteps (concrete; keyword-only).
      eta: η ∈ [0, 1], a Python float (keyword-only).
      clip_x0: clip x̂₀ to [−1, 1] at every step (keyword-only).

    Returns:
      The sample x₀, with the shape and dtype of ``x_T``. S calls of ``eps_fn``.
    """
    _check_start(x_T)
    ts = ddim_timesteps(schedule.num_timesteps, num_steps=num_steps, timesteps=timesteps)
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}.")
    batch = np.shape(x_T)[0]
    per_example = _is_key_batch(key, batch)
    dtype = jnp.result_type(x_T)
    alpha_bar = jnp.take(schedule.alphas_cumprod, ts)
    alpha_bar_prev = jnp.concatenate([jnp.ones((1,), alpha_bar.dtype), alpha_bar[:-1]])
    sigma = eta * jnp.sqrt(
        (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
    )
    # Clamped because rounding can push the (non-negative for η ≤ 1) radicand just below 0.
    dir_coef = jnp.sqrt(jnp.maximum(1.0 - alpha_bar_prev - jnp.square(sigma), 0.0))
    coefs = jnp.stack(
        [jnp.sqrt(alpha_bar), jnp.sqrt(1.0 - alpha_bar), jnp.sqrt(alpha_bar_prev), dir_coef, sigma],
        axis=1,
    ).astype(dtype)

    def step(x, inputs):
        t, coef = inputs
        sqrt_ab, sqrt_one_minus_ab, sqrt_ab_prev, dir_c, sigma_t = coef
        eps = call_eps_fn(eps_fn, x, jnp.full((batch,), t, jnp.int32))
        x0 = (x - sqrt_one_minus_ab * eps) / sqrt_ab
        if clip_x0:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = (x - sqrt_ab * x0) / sqrt_one_minus_ab
        x = sqrt_ab_prev * x0 + dir_c * eps
        if eta > 0.0:
            noise = _step_noise(key, t, jnp.shape(x), dtype, per_example)
            x = x + sigma_t * noise
        return x, None

    x0, _ = jax.lax.scan(step, x_T, (jnp.asarray(ts[::-1]), coefs[::-1]))
    return x0
