"""DPM-Solver++(2M), Heun and DDIM (η = 0) against the exact probability-flow ODE solution.

For data x₀ ~ N(m, s²) per dimension the optimal noise predictor ε*(x, t) = E[ε | x_t = x] is
known in closed form (reference.optimal_eps_fn), and so is the exact solution of the
probability-flow ODE it defines: (x − a m)/√v stays constant, v = a²s² + σ²
(reference.probability_flow_map). Every sampler here runs on a grid from τ_S = T − 1 down to
τ₁ = 0 and ends with the same step: x̂₀ = E[x₀ | x_{τ₁}] at its own x_{τ₁} (DDIM's last
step, and the σ → 0 step of DPM-Solver++ and Heun). So the exact answer for all of them is

    x_exact = E[x₀ | x_0 = Φ(x_T)],   Φ = the exact ODE map from timestep T − 1 to timestep 0,

in float64 NumPy, and the samplers run in float64 too (jax.enable_x64), so the error measured
is the discretization error alone.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.math import diffusion
from jaxgen.math.diffusion import ode_samplers
from tests.math.diffusion import reference

T = 1000
ALPHA_BAR = reference.tables(reference.linear_betas(T))["alphas_cumprod"]
# Two independent data dimensions, x₀ ~ N(m, s²) per dimension (m ≠ 0, s ≠ 1).
M = np.array([0.3, -0.5])
S = np.array([0.5, 0.8])
# Starting points across the bulk and the tails of N(0, 1), both signs in each dimension.
X_T = np.stack([np.linspace(-3.0, 3.0, 9), np.linspace(2.5, -2.5, 9)], axis=1)


def exact_sample(x_T):
    x_0 = reference.probability_flow_map(ALPHA_BAR[T - 1], ALPHA_BAR[0], x_T, M, S)
    return reference.posterior_mean_x0(ALPHA_BAR[0], x_0, M, S)


def ddim(eps_fn, schedule, x_T, num_steps, **kw):
    return diffusion.ddim_sample(eps_fn, schedule, x_T, jax.random.key(0), num_steps=num_steps,
                                 eta=0.0, clip_x0=False, **kw)


def dpm(eps_fn, schedule, x_T, num_steps, **kw):
    return diffusion.dpm_solver_pp_sample(eps_fn, schedule, x_T, num_steps=num_steps, **kw)


def heun(eps_fn, schedule, x_T, num_steps, **kw):
    return diffusion.heun_sample(eps_fn, schedule, x_T, num_steps=num_steps, **kw)


def max_errors(sampler, steps, **kw):
    """Max |sample − exact| over X_T, in float64, for each step count."""
    with jax.enable_x64(True):
        schedule = diffusion.make_schedule("linear", num_timesteps=T, dtype=jnp.float64)
        eps_fn = reference.optimal_eps_fn(schedule, M, S)
        x_T = jnp.asarray(X_T, jnp.float64)
        outputs = [np.asarray(sampler(eps_fn, schedule, x_T, n, **kw)) for n in steps]
    exact = exact_sample(X_T)
    return np.array([np.max(np.abs(out - exact)) for out in outputs])


def fitted_order(steps, errors):
    """p in error ≈ C · steps^(−p), by least squares on the logs."""
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


# Measured (linear schedule, T = 1000, float64); errors are max |sample − exact| over X_T:
#
#   sampler                  steps:  5       10      20      40      80      160     320
#   DDIM (η = 0)                     8.6e-1  4.2e-1  2.1e-1  1.1e-1  5.3e-2  2.7e-2  1.3e-2
#   DPM-Solver++(1), logsnr          8.8e-1  4.7e-1  2.4e-1  1.2e-1  6.0e-2  3.0e-2  1.4e-2
#   DPM-Solver++(2M), logsnr         5.1e-1  4.9e-2  2.9e-2  7.5e-3  1.9e-3  4.4e-4  1.3e-4
#   DPM-Solver++(2M), time_uniform   8.1e-1  3.2e-1  3.6e-1  1.3e-1  3.3e-2  8.3e-3  1.9e-3
#   Heun, karras (ρ = 7)             3.3e+0  4.3e-1  8.5e-2  1.9e-2  4.5e-3  1.1e-3  2.8e-4
#   Heun, time_uniform               7.8e-1  1.3e-1  3.0e-2  7.1e-3  1.8e-3  4.4e-4  1.1e-4
#
# The step counts of each case are where its asymptotic regime holds:
# * 2M, time_uniform: below ~40 steps the last step, into τ₁ = 0, is huge in λ (h ≈ 2.9 from
#   t = 53 at 20 steps, with r = h_prev/h ≈ 0.23), and the second-order extrapolation
#   overshoots (the 20-step error is larger than the 10-step one, where lower_order_final
#   makes that step first order). From 40 steps on, the error falls 4× per doubling.
# * 2M, logsnr: at 10 steps lower_order_final is on (S < 15), at 20 it is off, so 10 → 20
#   gains well under 4×; from 20 steps on it is second order. Beyond ~160 steps the
#   λ-uniform grid asks for several steps between neighbouring timesteps near t = 0 and falls
#   back on consecutive timesteps there, so the grid is no longer a smooth image of a uniform
#   one (the local order from 160 to 320 drops to 1.7); the fit stops at 160.
# * DDIM and Heun are in their regime from 10 steps.
# Tolerances on the fitted order: 0.7–1.4 for first order, 1.6–2.6 for second order.
CASES = {
    "ddim": (ddim, {}, [10, 20, 40, 80], 1),
    "dpm_order1_logsnr": (dpm, {"order": 1, "spacing": "logsnr"}, [20, 40, 80, 160], 1),
    "dpm_2m_logsnr": (dpm, {"spacing": "logsnr"}, [20, 40, 80, 160], 2),
    "dpm_2m_time_uniform": (dpm, {"spacing": "time_uniform"}, [40, 80, 160, 320], 2),
    "heun_karras": (heun, {"spacing": "karras"}, [10, 20, 40, 80], 2),
    "heun_time_uniform": (heun, {"spacing": "time_uniform"}, [10, 20, 40, 80], 2),
}
ORDER_RANGE = {1: (0.7, 1.4), 2: (1.6, 2.6)}


@pytest.mark.parametrize("case", list(CASES))
def test_error_against_exact_ode_solution_shrinks_with_the_expected_order(case):
    sampler, kw, steps, order = CASES[case]
    errors = max_errors(sampler, steps, **kw)
    assert np.all(np.diff(errors) < 0), (steps, errors)
    low, high = ORDER_RANGE[order]
    assert low <= fitted_order(steps, errors) <= high, (steps, errors, fitted_order(steps, errors))
    if order == 2:  # and it has converged to the exact answer, not to something else
        assert errors[-1] < 5e-3, errors


def test_second_order_beats_ddim_at_equal_nfe_and_lower_order_final_helps_few_steps():
    # 20 network evaluations each: DPM-Solver++(2M) is ~7× closer than DDIM.
    ddim_20 = max_errors(ddim, [20])[0]
    dpm_20 = max_errors(dpm, [20])[0]
    assert dpm_20 < 0.2 * ddim_20, (dpm_20, ddim_20)
    # At 10 steps the first-order step into τ₁ lowers the error (4.9e-2 against 7.1e-2).
    with_final, without_final = (
        max_errors(dpm, [10], lower_order_final=flag)[0] for flag in (True, False)
    )
    assert with_final < 0.8 * without_final, (with_final, without_final)


def test_dpm_solver_pp_first_order_is_ddim():
    # DPM-Solver++(1) in λ and DDIM (η = 0) are the same update (Lu et al. 2022, Sec. 3.1),
    # also with clipping (DDIM recomputes ε from the clipped x̂₀). Float32, T = 1000.
    schedule = diffusion.make_schedule("linear")
    eps_fn = reference.optimal_eps_fn(schedule, M, S)
    x_T = jnp.asarray(X_T, jnp.float32)
    for clip in (False, True):
        ours = diffusion.dpm_solver_pp_sample(eps_fn, schedule, x_T, num_steps=17, order=1,
                                              spacing="time_uniform", clip_x0=clip)
        theirs = diffusion.ddim_sample(eps_fn, schedule, x_T, jax.random.key(0), num_steps=17,
                                       clip_x0=clip)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_lower_order_final_switches_the_step_into_the_first_timestep():
    schedule = diffusion.make_schedule("linear", num_timesteps=100)
    eps_fn = reference.optimal_eps_fn(schedule, M, S)
    x_T = jnp.asarray(X_T, jnp.float32)
    run = functools.partial(diffusion.dpm_solver_pp_sample, eps_fn, schedule, x_T)
    # S = 3: the first step, the step into τ₁ and the σ → 0 step are all first order.
    np.testing.assert_array_equal(run(num_steps=3), run(num_steps=3, order=1))
    assert not np.allclose(run(num_steps=3, lower_order_final=False), run(num_steps=3, order=1))
    # From 15 steps on the switch is off.
    np.testing.assert_array_equal(run(num_steps=15), run(num_steps=15, lower_order_final=False))
    assert not np.allclose(run(num_steps=14), run(num_steps=14, lower_order_final=False))


def test_float32_matches_float64():
    # In float32 Heun carries x̃ = x/α up to 158·x_T (α_{T−1}² = 4e-5); rounding stays small.
    schedule = diffusion.make_schedule("linear")
    eps_fn = reference.optimal_eps_fn(schedule, M, S)
    x_T = jnp.asarray(X_T, jnp.float32)
    for sampler, steps in ((dpm, 20), (heun, 20)):
        out = np.asarray(sampler(eps_fn, schedule, x_T, steps))
        assert out.dtype == np.float32
        exact_error = max_errors(sampler, [steps])[0]
        assert abs(np.max(np.abs(out - exact_sample(X_T))) - exact_error) < 1e-4


def counting_eps_fn(schedule, calls):
    """The optimal predictor, recording the timestep of every call (in order, under scan)."""
    eps_fn = reference.optimal_eps_fn(schedule, M, S)

    def counted(x, t):
        jax.debug.callback(lambda t: calls.append(int(t[0])), t, ordered=True)
        return eps_fn(x, t)

    return counted


@pytest.mark.parametrize("num_steps", [1, 2, 7])
def test_network_evaluations_and_the_timesteps_they_see(num_steps):
    schedule = diffusion.make_schedule("cosine", num_timesteps=50)
    x_T = jnp.asarray(X_T, jnp.float32)
    for sampler, spacing in ((dpm, "logsnr"), (heun, "karras")):
        calls = []
        jax.block_until_ready(
            sampler(counting_eps_fn(schedule, calls), schedule, x_T, num_steps, spacing=spacing))
        jax.effects_barrier()
        grid = diffusion.solver_timesteps(schedule, num_steps, spacing)[::-1].tolist()
        if sampler is dpm:  # NFE = S, one per timestep, from T − 1 down to 0
            assert calls == grid
        else:  # NFE = 2S − 1: each Heun step evaluates at both ends, the Euler step once
            expected = [t for pair in zip(grid[:-1], grid[1:], strict=True) for t in pair]
            assert calls == expected + [grid[-1]] and len(calls) == 2 * num_steps - 1


@pytest.mark.parametrize("sampler", [dpm, heun])
def test_jit_determinism_and_batch_independence(sampler):
    schedule = diffusion.make_schedule("linear", num_timesteps=200)
    eps_fn = reference.optimal_eps_fn(schedule, M, S)
    x_T = jnp.asarray(X_T, jnp.float32)
    eager = sampler(eps_fn, schedule, x_T, 12)
    # The schedule is closed over (logsnr/karras grids read its tables), x_T traced.
    jitted = jax.jit(lambda x: sampler(eps_fn, schedule, x, 12))
    np.testing.assert_allclose(jitted(x_T), eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(jitted(x_T), jitted(x_T))
    # Deterministic: the key (accepted for a common call signature) changes nothing.
    fn = diffusion.dpm_solver_pp_sample if sampler is dpm else diffusion.heun_sample
    np.testing.assert_array_equal(fn(eps_fn, schedule, x_T, jax.random.key(1), num_steps=12),
                                  fn(eps_fn, schedule, x_T, jax.random.key(2), num_steps=12))
    # Each example alone gives what it gives in the batch.
    for i in (0, 4, 8):
        np.testing.assert_allclose(sampler(eps_fn, schedule, x_T[i:i + 1], 12), eager[i:i + 1],
                                   rtol=1e-6, atol=1e-6)


def test_time_grids_work_with_a_traced_schedule():
    schedule = diffusion.make_schedule("linear", num_timesteps=100)
    eps_fn_of = lambda sch: reference.optimal_eps_fn(sch, M, S)  # noqa: E731
    x_T = jnp.asarray(X_T, jnp.float32)
    for spacing in ("time_uniform", "quadratic"):
        run = lambda sch, x, spacing=spacing: diffusion.dpm_solver_pp_sample(  # noqa: E731
            eps_fn_of(sch), sch, x, num_steps=8, spacing=spacing)
        np.testing.assert_allclose(jax.jit(run)(schedule, x_T), run(schedule, x_T),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="schedule must be concrete"):
        jax.jit(lambda sch, x: diffusion.heun_sample(eps_fn_of(sch), sch, x, num_steps=8))(
            schedule, x_T)


def test_clip_x0_keeps_samples_in_range():
    schedule = diffusion.make_schedule("linear", num_timesteps=100)
    eps_fn = reference.optimal_eps_fn(schedule, np.array([0.9, -0.9]), np.array([0.5, 0.5]))
    x_T = 3.0 * jnp.asarray(X_T, jnp.float32)
    for sampler in (dpm, heun):
        free = np.asarray(sampler(eps_fn, schedule, x_T, 10))
        clipped = np.asarray(sampler(eps_fn, schedule, x_T, 10, clip_x0=True))
        assert np.max(np.abs(free)) > 1.5 and np.max(np.abs(clipped)) <= 1.0


@pytest.mark.parametrize("num_steps", [1, 2, 3, 10, 57, 500, 1000])
@pytest.mark.parametrize("spacing", ode_samplers.SPACINGS)
def test_solver_timesteps(spacing, num_steps):
    schedule = diffusion.make_schedule("linear")
    ts = diffusion.solver_timesteps(schedule, num_steps, spacing)
    assert ts.dtype == np.int32 and ts.shape == (num_steps,)
    assert ts[-1] == T - 1 and np.all(np.diff(ts) > 0)
    if num_steps > 1:
        assert ts[0] == 0
    if num_steps == T:
        np.testing.assert_array_equal(ts, np.arange(T))


def test_logsnr_and_karras_grids_follow_their_targets():
    schedule = diffusion.make_schedule("linear")
    log_sigma = 0.5 * np.log((1.0 - ALPHA_BAR) / ALPHA_BAR)  # log σ̃ = −λ
    u = np.linspace(0.0, 1.0, 12)
    # λ uniform; each timestep is the one nearest its target (within half a timestep's
    # spacing in log σ̃), and no clamping happens at 12 steps.
    targets = {
        "logsnr": log_sigma[0] + u * (log_sigma[-1] - log_sigma[0]),
        "karras": 7.0 * np.log(np.exp(log_sigma[0] / 7) + u * (np.exp(log_sigma[-1] / 7)
                                                                - np.exp(log_sigma[0] / 7))),
    }
    for spacing, target in targets.items():
        ts = diffusion.solver_timesteps(schedule, 12, spacing)
        for t, goal in zip(ts, target, strict=True):
            below, above = log_sigma[max(t - 1, 0)], log_sigma[min(t + 1, T - 1)]
            assert below - 1e-9 <= goal <= above + 1e-9, (spacing, t, goal)
    np.testing.assert_array_equal(diffusion.solver_timesteps(schedule, 10, "time_uniform"),
                                  diffusion.ddim_timesteps(T, num_steps=10))
    np.testing.assert_array_equal(diffusion.solver_timesteps(schedule, 5, "quadratic"),
                                  np.round(999 * np.linspace(0, 1, 5) ** 2))


def test_clear_errors():
    schedule = diffusion.make_schedule("linear", num_timesteps=100)
    eps_fn = reference.optimal_eps_fn(schedule, M, S)
    x_T = jnp.asarray(X_T, jnp.float32)
    for fn in (diffusion.dpm_solver_pp_sample, diffusion.heun_sample):
        run = functools.partial(fn, eps_fn, schedule)
        with pytest.raises(ValueError, match="num_steps must be between 1 and T = 100"):
            run(x_T, num_steps=0)
        with pytest.raises(ValueError, match="num_steps must be between 1 and T = 100"):
            run(x_T, num_steps=101)
        with pytest.raises(TypeError, match="num_steps must be an int"):
            run(x_T, num_steps=10.0)
        with pytest.raises(ValueError, match="unknown spacing 'linear'"):
            run(x_T, num_steps=10, spacing="linear")
        with pytest.raises(TypeError, match="x_T must be a floating-point array"):
            run(jnp.zeros((2, 2), jnp.int32), num_steps=10)
        with pytest.raises(ValueError, match="leading batch axis"):
            run(jnp.float32(0.0), num_steps=10)
        with pytest.raises(ValueError, match="eps_fn must return noise shaped like x"):
            fn(lambda x, t: x[:, :1], schedule, x_T, num_steps=5)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        diffusion.dpm_solver_pp_sample(eps_fn, schedule, x_T, num_steps=5, order=3)
