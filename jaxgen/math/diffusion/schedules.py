"""Noise schedules for DDPM/DDIM: β tables and every quantity derived from them.

Timestep convention (used by every function in :mod:`jaxgen.math.diffusion`): a timestep is a
0-based index ``t ∈ {0, …, T−1}`` into the tables below, and index ``t`` is the paper's step
``t + 1`` (Ho et al. 2020, arXiv:2006.11239, number the steps 1…T). So ``betas[0]`` is β₁,
``alphas_cumprod[t]`` is ᾱ_{t+1}, and ``alphas_cumprod_prev[t]`` is ᾱ_t with ᾱ₀ = 1.
Index 0 is the last denoising step, whose reverse conditional is the decoder p(x₀ | x₁).

Tables are computed in float64 NumPy and cast once, so cumulative products over T = 1000 steps
do not accumulate float32 rounding error.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

SCHEDULE_KINDS = ("linear", "cosine")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Schedule:
    """Precomputed diffusion tables, each of shape ``[T]``, indexed by the 0-based timestep.

    A frozen dataclass registered as a pytree: pass it to ``jax.jit``-compiled functions as an
    ordinary argument. ``num_timesteps`` comes from the table shape, so it is static under jit.
    In the paper's notation, for index ``t`` (the paper's step t + 1):

    Attributes:
      betas: β_t, the forward-process variances.
      alphas: α_t = 1 − β_t.
      alphas_cumprod: ᾱ_t = Π_{s ≤ t} α_s.
      alphas_cumprod_prev: ᾱ_{t−1}, with ᾱ before the first step equal to 1.
      sqrt_alphas_cumprod: √ᾱ_t.
      sqrt_one_minus_alphas_cumprod: √(1 − ᾱ_t).
      log_one_minus_alphas_cumprod: log(1 − ᾱ_t).
      sqrt_recip_alphas_cumprod: 1/√ᾱ_t.
      sqrt_recipm1_alphas_cumprod: √(1/ᾱ_t − 1).
      sqrt_recip_alphas: 1/√α_t.
      eps_coef: β_t/√(1 − ᾱ_t), the noise coefficient in the model mean μ_θ.
      posterior_variance: β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t); exactly 0 at index 0.
      posterior_log_variance_clipped: log β̃_t with the index-0 entry replaced by log β̃ at
        index 1, so that it is finite (the "fixed small" model log-variance).
      posterior_mean_coef1: √ᾱ_{t−1} β_t/(1 − ᾱ_t), the x₀ coefficient of μ̃_t.
      posterior_mean_coef2: √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t), the x_t coefficient of μ̃_t.
      large_variance: β_t with the index-0 entry replaced by β̃ at index 1 (the "fixed large"
        model variance; the replacement gives a better decoder likelihood, as in Nichol &
        Dhariwal 2021, arXiv:2102.09672).
      large_log_variance: log of ``large_variance``.
    """

    betas: jax.Array
    alphas: jax.Array
    alphas_cumprod: jax.Array
    alphas_cumprod_prev: jax.Array
    sqrt_alphas_cumprod: jax.Array
    sqrt_one_minus_alphas_cumprod: jax.Array
    log_one_minus_alphas_cumprod: jax.Array
    sqrt_recip_alphas_cumprod: jax.Array
    sqrt_recipm1_alphas_cumprod: jax.Array
    sqrt_recip_alphas: jax.Array
    eps_coef: jax.Array
    posterior_variance: jax.Array
    posterior_log_variance_clipped: jax.Array
    posterior_mean_coef1: jax.Array
    posterior_mean_coef2: jax.Array
    large_variance: jax.Array
    large_log_variance: jax.Array

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps (static: read from the table shape)."""
        return self.betas.shape[0]


def linear_betas(num_timesteps: int, *, beta_start: float, beta_end: float) -> np.ndarray:
    r"""Linear β schedule of Ho et al. 2020 (arXiv:2006.11239, Sec. 4): β evenly spaced.

    Args:
      num_timesteps: T.
      beta_start: β₁ (Ho et al.: 1e-4).
      beta_end: β_T (Ho et al.: 0.02).

    Returns:
      float64 NumPy array ``[T]``.
    """
    return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, *, s: float, max_beta: float) -> np.ndarray:
    r"""Cosine schedule of Nichol & Dhariwal 2021 (arXiv:2102.09672, Eq. 17).

    .. math::
        \bar\alpha(\tau) = \frac{f(\tau)}{f(0)},\quad
        f(\tau) = \cos^2\Big(\frac{\tau/T + s}{1 + s}\cdot\frac{\pi}{2}\Big),\quad
        \beta_\tau = \min\Big(1 - \frac{\bar\alpha(\tau)}{\bar\alpha(\tau-1)},\ \beta_{\max}\Big)

    for the paper's steps τ = 1…T; the clip keeps the last steps (where ᾱ → 0) from being
    singular.

    Args:
      num_timesteps: T.
      s: the offset s (paper: 0.008), which keeps β₁ from being vanishingly small.
      max_beta: β_max (paper: 0.999).

    Returns:
      float64 NumPy array ``[T]``.
    """
    steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    f = np.cos((steps + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
    betas = 1.0 - f[1:] / f[:-1]
    return np.minimum(betas, max_beta)


def schedule_from_betas(betas, *, dtype=jnp.float32) -> Schedule:
    """Build a :class:`Schedule` from any β table (all derived tables in float64, then cast).

    Args:
      betas: β_t for the 0-based indices t = 0…T−1, shape ``[T]`` with T ≥ 2, values in (0, 1).
      dtype: floating dtype of the stored tables (keyword-only).

    Returns:
      The schedule.

    Raises:
      ValueError: for a table of the wrong shape or with values outside (0, 1).
    """
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.shape[0] < 2:
        raise ValueError(f"betas must have shape [T] with T >= 2, got shape {betas.shape}.")
    if not (np.all(np.isfinite(betas)) and np.all(betas > 0.0) and np.all(betas < 1.0)):
        raise ValueError(
            f"betas must lie in (0, 1), got values in [{betas.min()}, {betas.max()}]."
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}.")
    alphas = 1.0 - betas
    alphas_cumprod = np.cumprod(alphas)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    one_minus = 1.0 - alphas_cumprod
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / one_minus
    # β̃ at index 0 is exactly 0 (q(x₀ | x₁, x₀) is a point mass); its log borrows index 1.
    posterior_log_variance_clipped = np.log(
        np.append(posterior_variance[1], posterior_variance[1:])
    )
    large_variance = np.append(posterior_variance[1], betas[1:])
    tables = dict(
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_alphas_cumprod=np.sqrt(alphas_cumprod),
        sqrt_one_minus_alphas_cumprod=np.sqrt(one_minus),
        log_one_minus_alphas_cumprod=np.log(one_minus),
        sqrt_recip_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod),
        sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod - 1.0),
        sqrt_recip_alphas=np.sqrt(1.0 / alphas),
        eps_coef=betas / np.sqrt(one_minus),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=posterior_log_variance_clipped,
        posterior_mean_coef1=np.sqrt(alphas_cumprod_prev) * betas / one_minus,
        posterior_mean_coef2=np.sqrt(alphas) * (1.0 - alphas_cumprod_prev) / one_minus,
        large_variance=large_variance,
        large_log_variance=np.log(large_variance),
    )
    return Schedule(**{name: jnp.asarray(v, dtype=dtype) for name, v in tables.items()})


def make_schedule(
    kind: str = "linear",
    *,
    num_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    cosine_s: float = 0.008,
    max_beta: float = 0.999,
    dtype=jnp.float32,
) -> Schedule:
    """Make a diffusion schedule by name.

    ``"linear"``: Ho et al. 2020 (arXiv:2006.11239), β from ``beta_start`` to ``beta_end``.
    ``"cosine"``: Nichol & Dhariwal 2021 (arXiv:2102.09672), with offset ``cosine_s`` and β
    clipped at ``max_beta``. See :func:`linear_betas` and :func:`cosine_betas` for the formulas
    and the module docstring for the 0-based timestep convention.

    Args:
      kind: ``"linear"`` or ``"cosine"``.
      num_timesteps: T ≥ 2.
      beta_start: β₁ of the linear schedule.
      beta_end: β_T of the linear schedule.
      cosine_s: s of the cosine schedule.
      max_beta: upper clip on β for the cosine schedule, in (0, 1); β = 1 would make ᾱ_T = 0
        and 1/√ᾱ_T infinite.
      dtype: floating dtype of the tables (default float32).

    Returns:
      A :class:`Schedule` whose tables have shape ``[num_timesteps]``.

    Raises:
      ValueError: for an unknown ``kind`` or out-of-range hyperparameters.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(
            f"unknown schedule kind {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}."
        )
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int | np.integer):
        raise TypeError(f"num_timesteps must be an int, got {num_timesteps!r}.")
    if num_timesteps < 2:
        raise ValueError(f"num_timesteps must be at least 2, got {num_timesteps}.")
    if kind == "linear":
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(
                "the linear schedule needs 0 < beta_start <= beta_end < 1, got "
                f"beta_start={beta_start}, beta_end={beta_end}."
            )
        betas = linear_betas(int(num_timesteps), beta_start=beta_start, beta_end=beta_end)
    else:
        if cosine_s < 0.0:
            raise ValueError(f"cosine_s must be non-negative, got {cosine_s}.")
        if not 0.0 < max_beta < 1.0:
            raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}.")
        betas = cosine_betas(int(num_timesteps), s=cosine_s, max_beta=max_beta)
    return schedule_from_betas(betas, dtype=dtype)
