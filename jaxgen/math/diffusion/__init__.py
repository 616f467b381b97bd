"""Denoising diffusion math: schedules, forward process, losses, samplers and bits/dim.

Ho et al. 2020 (DDPM, arXiv:2006.11239), Nichol & Dhariwal 2021 (cosine schedule,
arXiv:2102.09672), Song et al. 2021 (DDIM, arXiv:2010.02502), Lu et al. 2022 (DPM-Solver++,
arXiv:2211.01095), Karras et al. 2022 (Heun sampler, arXiv:2206.00364). Pure functions of arrays and
keys: no Flax, no config, no I/O.

Timesteps are 0-based indices ``t ∈ {0, …, T−1}`` into the schedule tables; index ``t`` is the
paper's step ``t + 1``. Functions take ``t`` as an integer array ``[B]``, one per example.
"""

from jaxgen.math.diffusion.likelihood import (
    bits_per_dim,
    discretized_gaussian_log_likelihood,
    prior_bpd,
    vlb_term,
)
from jaxgen.math.diffusion.ode_samplers import (
    dpm_solver_pp_sample,
    heun_sample,
    solver_timesteps,
)
from jaxgen.math.diffusion.process import (
    predict_eps_from_x0,
    predict_x0_from_eps,
    q_posterior,
    q_sample,
    q_sample_from_noise,
    sample_timesteps,
)
from jaxgen.math.diffusion.reverse import (
    l_simple,
    model_mean_from_eps,
    model_variance,
    p_mean_variance,
    vlb_weight,
)
from jaxgen.math.diffusion.samplers import ddim_sample, ddim_timesteps, ddpm_sample
from jaxgen.math.diffusion.schedules import (
    Schedule,
    cosine_betas,
    linear_betas,
    make_schedule,
    schedule_from_betas,
)

__all__ = [
    "Schedule",
    "bits_per_dim",
    "cosine_betas",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "discretized_gaussian_log_likelihood",
    "dpm_solver_pp_sample",
    "heun_sample",
    "l_simple",
    "linear_betas",
    "make_schedule",
    "model_mean_from_eps",
    "model_variance",
    "p_mean_variance",
    "predict_eps_from_x0",
    "predict_x0_from_eps",
    "prior_bpd",
    "q_posterior",
    "q_sample",
    "q_sample_from_noise",
    "sample_timesteps",
    "schedule_from_betas",
    "solver_timesteps",
    "vlb_term",
    "vlb_weight",
]
