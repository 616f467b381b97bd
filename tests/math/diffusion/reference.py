"""Float64 NumPy references for the diffusion tests, written from the papers' formulas, and
the closed-form optimal noise predictor for Gaussian data (in JAX, for the samplers to call).

Indices are 0-based like jaxgen's (index t is the paper's step t + 1).
"""

import math

import jax.numpy as jnp
import numpy as np


def linear_betas(num_timesteps, beta_start=1e-4, beta_end=0.02):
    """Ho et al. 2020: β evenly spaced from beta_start to beta_end."""
    step = (beta_end - beta_start) / (num_timesteps - 1)
    return beta_start + step * np.arange(num_timesteps, dtype=np.float64)


def cosine_alpha_bar(num_timesteps, s=0.008):
    """Nichol & Dhariwal 2021, Eq. 17: ᾱ(τ) = f(τ)/f(0) for τ = 0…T (unclipped)."""
    tau = np.arange(num_timesteps + 1, dtype=np.float64)
    f = np.array([math.cos((k / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2 for k in tau])
    return f / f[0]


def tables(betas):
    """Every derived quantity, by the paper's definitions, looped rather than vectorised."""
    betas = np.asarray(betas, np.float64)
    num = len(betas)
    alpha_bar = np.empty(num)
    running = 1.0
    for i in range(num):
        running *= 1.0 - betas[i]
        alpha_bar[i] = running
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    post_var = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas
    first = np.arange(num) == 0
    return {
        "betas": betas,
        "alphas": 1.0 - betas,
        "alphas_cumprod": alpha_bar,
        "alphas_cumprod_prev": alpha_bar_prev,
        "sqrt_alphas_cumprod": alpha_bar**0.5,
        "sqrt_one_minus_alphas_cumprod": (1.0 - alpha_bar) ** 0.5,
        "log_one_minus_alphas_cumprod": np.log(1.0 - alpha_bar),
        "sqrt_recip_alphas_cumprod": alpha_bar**-0.5,
        "sqrt_recipm1_alphas_cumprod": (1.0 / alpha_bar - 1.0) ** 0.5,
        "sqrt_recip_alphas": (1.0 - betas) ** -0.5,
        "eps_coef": betas / (1.0 - alpha_bar) ** 0.5,
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.where(first, post_var[1], post_var)),
        "posterior_mean_coef1": alpha_bar_prev**0.5 * betas / (1.0 - alpha_bar),
        "posterior_mean_coef2": (1.0 - betas) ** 0.5 * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar),
        "large_variance": np.where(first, post_var[1], betas),
        "large_log_variance": np.log(np.where(first, post_var[1], betas)),
    }


def optimal_eps_coefficients(alpha_bar, m, s):
    """E[ε | x_t] = k (x_t − a m), k = σ/(a²s² + σ²), for x₀ ~ N(m, s²), a = √ᾱ, σ² = 1 − ᾱ."""
    a, sigma = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    k = sigma / (a * a * s * s + sigma * sigma)
    return k, -k * a * m


def ddpm_output_moments(tab, m, s, variance):
    """Exact mean/variance of ancestral DDPM (x_T ~ N(0, 1)) with the optimal predictor.

    Each step is affine in x plus independent Gaussian noise, so the moments propagate exactly.
    """
    var_table = tab["posterior_variance"] if variance == "small" else tab["large_variance"]
    mean, var = 0.0, 1.0
    for t in range(len(tab["betas"]) - 1, -1, -1):
        ab, beta = tab["alphas_cumprod"][t], tab["betas"][t]
        k, c = optimal_eps_coefficients(ab, m, s)
        # μ_θ = (x − β/√(1−ᾱ) ε̂)/√α with ε̂ = k x + c.
        gain = (1.0 - beta / math.sqrt(1.0 - ab) * k) / math.sqrt(1.0 - beta)
        shift = -(beta / math.sqrt(1.0 - ab)) * c / math.sqrt(1.0 - beta)
        mean = gain * mean + shift
        var = gain * gain * var + (var_table[t] if t > 0 else 0.0)
    return mean, var


def ddim_output_moments(tab, timesteps, m, s, eta):
    """Exact mean/variance of DDIM (Song et al. 2021, Eq. 12) with the optimal predictor."""
    mean, var = 0.0, 1.0
    for i in range(len(timesteps) - 1, -1, -1):
        ab = tab["alphas_cumprod"][timesteps[i]]
        ab_prev = tab["alphas_cumprod"][timesteps[i - 1]] if i > 0 else 1.0
        sigma2 = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        k, c = optimal_eps_coefficients(ab, m, s)
        # x̂₀ = (x − √(1−ᾱ) ε̂)/√ᾱ; x' = √ᾱ' x̂₀ + √(1−ᾱ'−σ²) ε̂ + σ z.
        x0_gain = (1 - math.sqrt(1 - ab) * k) / math.sqrt(ab)
        x0_shift = -math.sqrt(1 - ab) * c / math.sqrt(ab)
        d = math.sqrt(max(1 - ab_prev - sigma2, 0.0))
        gain = math.sqrt(ab_prev) * x0_gain + d * k
        shift = math.sqrt(ab_prev) * x0_shift + d * c
        mean = gain * mean + shift
        var = gain * gain * var + sigma2
    return mean, var


def optimal_eps_fn(schedule, m, s):
    """For x₀ ~ N(m, s²) per dimension, the best noise predictor E[ε | x_t] =
    σ(x_t − a m)/(a²s² + σ²) with a = √ᾱ_t, σ² = 1 − ᾱ_t; ``eps_fn(x: [B, D], t: [B])``,
    computed in the dtype of the schedule's tables."""
    dtype = schedule.betas.dtype
    m, s = jnp.asarray(m, dtype), jnp.asarray(s, dtype)

    def eps_fn(x, t):
        a = schedule.sqrt_alphas_cumprod[t][:, None]
        sigma = schedule.sqrt_one_minus_alphas_cumprod[t][:, None]
        return sigma * (x - a * m) / (a * a * s * s + sigma * sigma)

    return eps_fn


def posterior_mean_x0(alpha_bar, x, m, s):
    """E[x₀ | x_t = x] = m + a s² (x − a m)/v, v = a²s² + σ², for x₀ ~ N(m, s²) (float64)."""
    a2 = np.float64(alpha_bar)
    a, v = math.sqrt(a2), a2 * np.square(s) + (1.0 - a2)
    return m + a * np.square(s) / v * (np.asarray(x, np.float64) - a * m)


def probability_flow_map(alpha_bar_from, alpha_bar_to, x, m, s):
    """The exact probability-flow ODE solution from x at one noise level to the next, for
    x₀ ~ N(m, s²): x_b = a_b m + √(v_b/v_a) (x_a − a_a m), v = a²s² + σ² (float64).

    (The ODE keeps (x − a m)/√v constant: the marginal N(a m, v) is carried to itself.) It
    depends only on the two levels, not on how the path between them is parameterised.
    """
    a_from, a_to = math.sqrt(alpha_bar_from), math.sqrt(alpha_bar_to)
    v_from = alpha_bar_from * np.square(s) + (1.0 - alpha_bar_from)
    v_to = alpha_bar_to * np.square(s) + (1.0 - alpha_bar_to)
    return a_to * m + np.sqrt(v_to / v_from) * (np.asarray(x, np.float64) - a_from * m)
