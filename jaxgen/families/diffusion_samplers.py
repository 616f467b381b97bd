"""The diffusion family's samplers: a registry of name → function + its own typed settings.

A sampler is ``run(eps_fn, schedule, x_T, keys, settings, clip_x0) -> x₀`` with ``keys`` one
PRNG key per example (``[B]``, so a stochastic sampler's noise does not depend on how the
batch is split over devices) and ``settings`` an instance of its frozen settings dataclass,
which is the config section ``sampling.<name>``. A new sampler is one :func:`register` call::

    register("my_sampler", MySettings, lambda eps_fn, schedule, x_T, keys, s, clip: ...)

Network evaluations per sample (NFE, one batched call each, with or without guidance):
DDPM T; DDIM ``ddim.steps``; DPM-Solver++(2M) ``dpm_solver.steps``; Heun
``2·heun.steps − 1``.

Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598) is applied to ``eps_fn``
before a sampler sees it (:func:`guided_eps_fn`): ε̃ = (1 + w)·ε(x, t, c) − w·ε(x, t, ∅). This w
is the paper's; codebases that write ε̃ = ε(∅) + s·(ε(c) − ε(∅)) use the *guidance scale*
s = 1 + w (so w = 0, i.e. s = 1, is the plain conditional model; "s = 7.5" is w = 6.5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgen.math import diffusion
from jaxgen.math.diffusion.ode_samplers import SPACINGS
from jaxgen.math.diffusion.reverse import VARIANCE_KINDS
from jaxgen.validation import check_choice, check_number


@dataclasses.dataclass(frozen=True)
class DDIMSettings:
    steps: int = 50  # network evaluations
    eta: float = 0.0  # 0: deterministic; 1: DDPM-like noise

    def __post_init__(self):
        check_number("sampling.ddim.steps", self.steps, low=1, integer=True)
        check_number("sampling.ddim.eta", self.eta, low=0.0)


@dataclasses.dataclass(frozen=True)
class DDPMSettings:
    variance: str = "small"  # σ_t² = β̃_t ("small") or β_t ("large")

    def __post_init__(self):
        check_choice("sampling.ddpm.variance", self.variance, VARIANCE_KINDS)


@dataclasses.dataclass(frozen=True)
class DPMSolverSettings:
    steps: int = 20  # network evaluations
    spacing: str = "logsnr"  # steps uniform in λ = log(α/σ); or "time_uniform", "quadratic", …

    def __post_init__(self):
        check_number("sampling.dpm_solver.steps", self.steps, low=1, integer=True)
        check_choice("sampling.dpm_solver.spacing", self.spacing, SPACINGS)


@dataclasses.dataclass(frozen=True)
class HeunSettings:
    steps: int = 18  # 2·steps − 1 network evaluations
    spacing: str = "karras"  # Karras et al.'s ρ = 7 grid, or "time_uniform", "logsnr", …

    def __post_init__(self):
        check_number("sampling.heun.steps", self.steps, low=1, integer=True)
        check_choice("sampling.heun.spacing", self.spacing, SPACINGS)


@dataclasses.dataclass(frozen=True)
class Registered:
    settings: type
    run: Callable[..., jax.Array]


REGISTRY: dict[str, Registered] = {}


def register(name: str, settings: type, run: Callable[..., jax.Array]) -> None:
    """Add sampler `name` with its settings dataclass (config section ``sampling.<name>``)."""
    if name in REGISTRY:
        raise ValueError(f"sampler {name!r} is already registered.")
    REGISTRY[name] = Registered(settings, run)


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def guided_eps_fn(eps_model: Callable, labels: jax.Array | None, null_label: int,
                  guidance: float) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(x, t) -> ε`` for a sampler: unconditional (`labels` None), conditional, or with
    classifier-free guidance weight `guidance` = w > 0: ε̃ = (1 + w)·ε(x, t, c) − w·ε(x, t, ∅),
    both terms from one batched call of ``eps_model(x, t, y)`` on ``[x; x]`` with labels
    ``[c; ∅]`` (``∅`` = `null_label`)."""
    if labels is None:
        return lambda x, t: eps_model(x, t, None)
    if not guidance:
        return lambda x, t: eps_model(x, t, labels)

    def guided(x, t):
        b = x.shape[0]
        both = eps_model(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                         jnp.concatenate([labels, jnp.full_like(labels, null_label)]))
        cond, uncond = both[:b], both[b:]
        return (1.0 + guidance) * cond - guidance * uncond

    return guided


def _ddim(eps_fn, schedule, x_T, keys, s: DDIMSettings, clip_x0: bool):
    return diffusion.ddim_sample(eps_fn, schedule, x_T, keys, num_steps=s.steps, eta=s.eta,
                                 clip_x0=clip_x0)


def _ddpm(eps_fn, schedule, x_T, keys, s: DDPMSettings, clip_x0: bool):
    return diffusion.ddpm_sample(eps_fn, schedule, x_T, keys, variance=s.variance,
                                 clip_x0=clip_x0)


def _dpm_solver(eps_fn, schedule, x_T, keys, s: DPMSolverSettings, clip_x0: bool):
    del keys  # deterministic
    return diffusion.dpm_solver_pp_sample(eps_fn, schedule, x_T, num_steps=s.steps,
                                          spacing=s.spacing, clip_x0=clip_x0)


def _heun(eps_fn, schedule, x_T, keys, s: HeunSettings, clip_x0: bool):
    del keys, clip_x0  # deterministic; the ODE is integrated unclipped
    return diffusion.heun_sample(eps_fn, schedule, x_T, num_steps=s.steps, spacing=s.spacing)


register("ddim", DDIMSettings, _ddim)
register("ddpm", DDPMSettings, _ddpm)
register("dpm_solver", DPMSolverSettings, _dpm_solver)
register("heun", HeunSettings, _heun)
