r"""Fast deterministic samplers: DPM-Solver++(2M) and Heun on the probability-flow ODE.

Both solve the probability-flow ODE of the diffusion (Song et al. 2021, arXiv:2011.13456),
whose exact solution maps x_T to a sample, with a second-order method instead of the
first-order DDIM step (DDIM with η = 0 is the Euler method of this ODE). Notation, per 0-based
timestep t (see :mod:`jaxgen.math.diffusion.schedules`):

* α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), so x_t = α_t x₀ + σ_t ε;
* λ_t = log(α_t/σ_t), the half log signal-to-noise ratio (decreasing in t);
* σ̃_t = σ_t/α_t = √(1/ᾱ_t − 1) = e^{−λ_t}, the noise level of the rescaled x̃ = x/α_t
  (Karras et al. 2022's σ, in which the ODE is dx̃/dσ̃ = ε);
* x̂₀(x, t) = (x − σ_t ε_θ(x, t))/α_t, the data prediction.

**Steps lie on the schedule's discrete timesteps.** The noise predictor is only defined at the
integer timesteps it was trained on, so every grid (:func:`solver_timesteps`) is a strictly
increasing subsequence 0 = τ₁ < … < τ_S = T−1 of them, and ``eps_fn`` is called with exactly
those integers: no continuous time is ever rounded or interpolated inside a step. Continuous
spacings (uniform in λ, Karras's ρ-spacing in σ̃) are mapped to the nearest timestep once, when
the grid is built. Every sampler ends like DDIM: a last first-order step from τ₁ (= 0 for
S ≥ 2) to σ = 0, which returns x̂₀(x_{τ₁}, τ₁).

The samplers are pure functions, one ``jax.lax.scan`` each, usable inside ``jax.jit``. They
take the same arguments as :func:`~jaxgen.math.diffusion.samplers.ddim_sample` (``eps_fn,
schedule, x_T, key``) so that one call site serves every sampler; the key is accepted and
ignored (both are deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.math.diffusion import process
from jaxgen.math.diffusion.samplers import EpsFn, call_eps_fn, ddim_timesteps
from jaxgen.math.diffusion.schedules import Schedule

SPACINGS = ("time_uniform", "quadratic", "logsnr", "karras")
KARRAS_RHO = 7.0
# Lu et al.'s "lower order final" switch applies below this many steps (as in the reference
# implementations, where few large final steps make the second-order extrapolation unstable).
LOWER_ORDER_FINAL_BELOW = 15


def solver_timesteps(schedule: Schedule, num_steps: int, spacing: str) -> np.ndarray:
    r"""The increasing 0-based timesteps 0 = τ₁ < … < τ_S = T−1 an ODE sampler visits.

    Spacings, with u_i = (i − 1)/(S − 1) for i = 1…S:

    * ``"time_uniform"``: τ_i = round(u_i (T − 1)), the grid of
      :func:`~jaxgen.math.diffusion.samplers.ddim_timesteps` (Song et al. 2021; the default of
      Lu et al.'s DPM-Solver).
    * ``"quadratic"``: τ_i = round(u_i² (T − 1)), denser near the data (Song et al. 2021's
      "quadratic" DDIM subsequence; Lu et al.'s ``time_quadratic``).
    * ``"logsnr"``: λ uniform between λ_{T−1} and λ₀ (Lu et al. 2022's ``logSNR`` spacing,
      recommended for low-resolution pixel models).
    * ``"karras"``: σ̃_i = (σ̃_min^{1/ρ} + u_i (σ̃_max^{1/ρ} − σ̃_min^{1/ρ}))^ρ with ρ = 7,
      σ̃_min = σ̃₀ and σ̃_max = σ̃_{T−1} (Karras et al. 2022, Eq. 5).

    A continuous target (λ or σ̃) becomes a timestep by interpolating the timestep index
    linearly in log σ̃ = −λ over the schedule's table and rounding. Where the spacing asks for
    more than one step between two neighbouring timesteps (λ-uniform near t = 0 at large S),
    the grid uses consecutive timesteps instead (a forward pass τ_i ← max(τ_i, τ_{i−1} + 1),
    then a backward pass τ_i ← min(τ_i, τ_{i+1} − 1)), so the S timesteps are always distinct:
    one step, and one set of network evaluations, per timestep.

    Args:
      schedule: the diffusion schedule (T steps). ``"logsnr"`` and ``"karras"`` read its
        tables, so they need a concrete schedule (close over it rather than passing it as a
        ``jax.jit`` argument); the other spacings need only T.
      num_steps: S, 1 ≤ S ≤ T (S = 1 gives [T − 1]).
      spacing: one of :data:`SPACINGS`.

    Returns:
      int32 NumPy array ``[S]``, strictly increasing, from 0 to T − 1 (S ≥ 2).

    Raises:
      ValueError: for an unknown spacing or S out of range.
      TypeError: for a non-integer S, or a table spacing with a traced schedule.
    """
    num_timesteps = schedule.num_timesteps
    if spacing not in SPACINGS:
        raise ValueError(
            f"unknown spacing {spacing!r}; expected one of {', '.join(SPACINGS)}."
        )
    uniform = ddim_timesteps(num_timesteps, num_steps=num_steps)  # also checks num_steps
    if num_steps == 1 or spacing == "time_uniform":
        return uniform
    u = np.linspace(0.0, 1.0, num_steps)
    if spacing == "quadratic":
        target = (num_timesteps - 1) * u**2
    else:
        tables = (schedule.sqrt_alphas_cumprod, schedule.log_one_minus_alphas_cumprod)
        if any(isinstance(table, jax.core.Tracer) for table in tables):
            raise TypeError(
                f"spacing={spacing!r} reads the schedule's tables, so the schedule must be "
                "concrete: close over it instead of passing it as an argument of a jitted "
                "function, or use spacing='time_uniform' or 'quadratic'."
            )
        log_alpha = np.log(np.asarray(tables[0], np.float64))
        log_sigma_tilde = 0.5 * np.asarray(tables[1], np.float64) - log_alpha  # −λ, increasing
        lo, hi = log_sigma_tilde[0], log_sigma_tilde[-1]
        if spacing == "logsnr":
            goal = lo + u * (hi - lo)
        else:
            inv_rho = 1.0 / KARRAS_RHO
            sigma_lo, sigma_hi = np.exp(lo) ** inv_rho, np.exp(hi) ** inv_rho
            goal = KARRAS_RHO * np.log(sigma_lo + u * (sigma_hi - sigma_lo))
        target = np.interp(goal, log_sigma_tilde, np.arange(num_timesteps, dtype=np.float64))
    ts = np.round(target).astype(np.int64)
    ts[0] = 0
    for i in range(1, num_steps):
        ts[i] = max(ts[i], ts[i - 1] + 1)
    ts[-1] = num_timesteps - 1
    for i in range(num_steps - 2, -1, -1):
        ts[i] = min(ts[i], ts[i + 1] - 1)
    return ts.astype(np.int32)


def dpm_solver_pp_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    x_T: jax.Array,
    key: jax.Array | None = None,
    *,
    num_steps: int,
    spacing: str = "logsnr",
    order: int = 2,
    clip_x0: bool = False,
    lower_order_final: bool = True,
) -> jax.Array:
    r"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", arXiv:2211.01095, Algorithm 2).

    A multistep exponential integrator of the probability-flow ODE in λ, on the data
    prediction x̂₀. Over the grid t₀ = τ_S > t₁ > … > t_{S−1} = τ₁ of
    :func:`solver_timesteps`, then t_S with σ = 0 (λ = ∞), with h_i = λ_{t_i} − λ_{t_{i−1}}:

    .. math::
        x_{t_i} = \frac{\sigma_{t_i}}{\sigma_{t_{i-1}}}\,x_{t_{i-1}}
                  - \alpha_{t_i}\,(e^{-h_i} - 1)\,D_i,\qquad
        D_i = \Big(1 + \frac{1}{2r_i}\Big)\hat x_0^{(i-1)} - \frac{1}{2r_i}\hat x_0^{(i-2)},
        \quad r_i = \frac{h_{i-1}}{h_i},

    with x̂₀^{(j)} = x̂₀(x_{t_j}, t_j), the one new ``eps_fn`` call of each step; a
    first-order step uses D_i = x̂₀^{(i−1)} (this is DDIM with η = 0). First-order steps: the
    first (there is no earlier x̂₀), the last, to σ = 0 (h = ∞, where the step is exactly
    x_{t_S} = x̂₀^{(S−1)}, DDIM's last step), and, with ``lower_order_final`` and S < 15, the
    step into τ₁ (the reference implementation's final step, which ends at the first
    timestep; few large final steps make the extrapolation unstable). With ``clip_x0`` every
    x̂₀ is clipped to [−1, 1] before it enters D.

    Network function evaluations (NFE): S = ``num_steps`` calls of ``eps_fn`` (one per grid
    timestep), like DDIM on the same grid.

    Args:
      eps_fn: ε_θ(x, t) with ``x: [B, ...]`` and ``t: int32 [B]``, returning ``[B, ...]``.
      schedule: the diffusion schedule (T steps).
      x_T: the starting noise at timestep T − 1, ``[B, ...]`` (e.g. ``[B, H, W, C]``).
      key: ignored (the sampler is deterministic); accepted so every sampler is called alike.
      num_steps: S, 1 ≤ S ≤ T, the number of steps and of ``eps_fn`` calls (keyword-only).
      spacing: the grid (keyword-only), one of :data:`SPACINGS`, see
        :func:`solver_timesteps`: ``"logsnr"`` (default; uniform in λ, the variable the solver
        steps in; needs a concrete schedule), ``"time_uniform"`` (DDIM's grid),
        ``"quadratic"``, ``"karras"``. On the linear T = 1000 schedule, ``"time_uniform"``
        leaves one step of h ≈ 2.9 into τ₁ = 0 at S = 20, where the 2M extrapolation
        (r ≈ 0.23) overshoots: on Gaussian data its 20-step error is 12× that of ``"logsnr"``
        and larger than DDIM's (see tests/math/diffusion/test_ode_samplers.py).
      order: 2 (DPM-Solver++(2M)) or 1 (DPM-Solver++(1), i.e. DDIM with η = 0) (keyword-only).
      clip_x0: clip x̂₀ to [−1, 1] at every step, for data in [−1, 1] (keyword-only).
      lower_order_final: first order into τ₁ when S < 15 (keyword-only).

    Returns:
      The sample x₀, with the shape and dtype of ``x_T``.
    """
    process.check_x("x_T", x_T)
    if order not in (1, 2) or isinstance(order, bool):
        raise ValueError(f"order must be 1 or 2, got {order!r}.")
    ts = solver_timesteps(schedule, num_steps, spacing)
    size = len(ts)
    batch = np.shape(x_T)[0]
    dtype = jnp.result_type(x_T)
    current = ts[::-1]  # t_0 = T − 1, …, t_{S−1} = 0
    alpha = jnp.take(schedule.sqrt_alphas_cumprod, current)
    sigma = jnp.take(schedule.sqrt_one_minus_alphas_cumprod, current)
    lam = jnp.log(alpha) - jnp.log(sigma)
    h = lam[1:] - lam[:-1]  # [S − 1]; the last step's h (to σ = 0) is infinite
    one = jnp.ones((1,), alpha.dtype)
    # Per step i (from t_i to t_{i+1}): x ← ratio·x + gain·D.
    ratio = jnp.concatenate([sigma[1:] / sigma[:-1], 0.0 * one])
    gain = jnp.concatenate([-alpha[1:] * jnp.expm1(-h), one])
    second = np.zeros(size, bool)
    if order == 2:
        second[1:size - 1] = True  # neither the first step nor the one to σ = 0
        if lower_order_final and size < LOWER_ORDER_FINAL_BELOW and size >= 3:
            second[size - 2] = False
    # D = x̂₀ + w (x̂₀ − x̂₀_prev), w = 1/(2r) = h_i/(2 h_{i−1}); h of steps 1…S−2 and their
    # predecessors, padded to length S where w is unused.
    h_here = jnp.concatenate([one, h[1:], one]) if size >= 2 else one
    h_before = jnp.concatenate([one, h[:-1], one]) if size >= 2 else one
    weight = jnp.where(jnp.asarray(second), h_here / (2.0 * h_before), 0.0)
    coefs = jnp.stack([alpha, sigma, ratio, gain, weight], axis=1).astype(dtype)

    def step(carry, inputs):
        x, x0_prev = carry
        t, coef = inputs
        alpha_t, sigma_t, ratio_t, gain_t, weight_t = coef
        eps = call_eps_fn(eps_fn, x, jnp.full((batch,), t, jnp.int32))
        x0 = (x - sigma_t * eps) / alpha_t
        if clip_x0:
            x0 = jnp.clip(x0, -1.0, 1.0)
        d = x0 + weight_t * (x0 - x0_prev)
        return (ratio_t * x + gain_t * d, x0), None

    (x0, _), _ = jax.lax.scan(
        step, (x_T, jnp.zeros_like(x_T)), (jnp.asarray(current), coefs)
    )
    return x0


def heun_sample(
    eps_fn: EpsFn,
    schedule: Schedule,
    x_T: jax.Array,
    key: jax.Array | None = None,
    *,
    num_steps: int,
    spacing: str = "karras",
    clip_x0: bool = False,
) -> jax.Array:
    r"""Heun's second-order method (Karras et al. 2022, "Elucidating the Design Space of
    Diffusion-Based Generative Models", arXiv:2206.00364, Algorithm 1 with S_churn = 0).

    In the σ-parameterisation x̃ = x/α_t, σ̃ = σ_t/α_t, the probability-flow ODE is
    dx̃/dσ̃ = (x̃ − D(x̃; σ̃))/σ̃ = ε_θ(α_t x̃, t) with D = x̂₀. Over the grid
    σ̃_0 > … > σ̃_{S−1} of the timesteps τ_S > … > τ₁ (:func:`solver_timesteps`), then
    σ̃_S = 0:

    .. math::
        d_i = \varepsilon_\theta(\alpha_{t_i}\tilde x_i, t_i),\quad
        \tilde x' = \tilde x_i + (\tilde\sigma_{i+1} - \tilde\sigma_i)\,d_i,\quad
        \tilde x_{i+1} = \tilde x_i + (\tilde\sigma_{i+1} - \tilde\sigma_i)\,
            \tfrac12\big(d_i + \varepsilon_\theta(\alpha_{t_{i+1}}\tilde x', t_{i+1})\big),

    and the last step, to σ̃ = 0, is Euler: x₀ = x̃_{S−1} − σ̃_{S−1} d_{S−1} = x̂₀ (as in
    DDIM). Every σ̃_i is the σ̃ of a discrete timestep t_i, so ``eps_fn`` is always called
    with the integer timestep at which it was trained and the exact α_{t_i}; Karras et al.'s
    continuous ρ-spacing is snapped to the nearest timestep when the grid is built
    (``spacing="karras"``, their recipe for discrete-time DDPM models). x̃ starts at
    x_T/α_{T−1}. With ``clip_x0`` each x̂₀ = x̃ − σ̃ ε is clipped to [−1, 1] and the slope
    recomputed from it, d = (x̃ − x̂₀)/σ̃.

    Network function evaluations (NFE): 2 S − 1 calls of ``eps_fn`` for S = ``num_steps``
    (two per Heun step, one for the final Euler step).

    Args:
      eps_fn: ε_θ(x, t) with ``x: [B, ...]`` and ``t: int32 [B]``, returning ``[B, ...]``.
      schedule: the diffusion schedule (T steps).
      x_T: the starting noise at timestep T − 1, ``[B, ...]``.
      key: ignored (the sampler is deterministic); accepted so every sampler is called alike.
      num_steps: S, 1 ≤ S ≤ T, the number of steps (keyword-only).
      spacing: the grid, one of ``"karras"`` (default, ρ = 7), ``"time_uniform"``,
        ``"quadratic"``, ``"logsnr"`` (see :func:`solver_timesteps`; keyword-only).
      clip_x0: clip x̂₀ to [−1, 1] at every evaluation (keyword-only).

    Returns:
      The sample x₀, with the shape and dtype of ``x_T``.
    """
    process.check_x("x_T", x_T)
    ts = solver_timesteps(schedule, num_steps, spacing)
    batch = np.shape(x_T)[0]
    dtype = jnp.result_type(x_T)
    current = ts[::-1]
    alpha = jnp.take(schedule.sqrt_alphas_cumprod, current).astype(dtype)
    sigma_tilde = jnp.take(schedule.sqrt_recipm1_alphas_cumprod, current).astype(dtype)

    def slope(x_tilde, t, alpha_t, sigma_t):
        """dx̃/dσ̃ at (x̃, σ̃_t), and x̂₀."""
        eps = call_eps_fn(eps_fn, alpha_t * x_tilde, jnp.full((batch,), t, jnp.int32))
        x0 = x_tilde - sigma_t * eps
        if clip_x0:
            x0 = jnp.clip(x0, -1.0, 1.0)
            eps = (x_tilde - x0) / sigma_t
        return eps, x0

    def step(x_tilde, inputs):
        t, t_next, coef = inputs
        alpha_t, alpha_next, sigma_t, sigma_next = coef
        d, _ = slope(x_tilde, t, alpha_t, sigma_t)
        x_euler = x_tilde + (sigma_next - sigma_t) * d
        d_next, _ = slope(x_euler, t_next, alpha_next, sigma_next)
        return x_tilde + (sigma_next - sigma_t) * 0.5 * (d + d_next), None

    coefs = jnp.stack([alpha[:-1], alpha[1:], sigma_tilde[:-1], sigma_tilde[1:]], axis=1)
    x_tilde, _ = jax.lax.scan(
        step, x_T / alpha[0], (jnp.asarray(current[:-1]), jnp.asarray(current[1:]), coefs)
    )
    _, x0 = slope(x_tilde, current[-1], alpha[-1], sigma_tilde[-1])
    return x0
