"""make_schedule vs float64 NumPy recomputation; the Schedule pytree under jit; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.math import diffusion
from tests.math.diffusion import reference

FIELDS = tuple(reference.tables(reference.linear_betas(4)).keys())


def assert_tables_close(schedule, want, rtol):
    for name in FIELDS:
        got = np.asarray(getattr(schedule, name), np.float64)
        assert got.dtype == np.float64 and getattr(schedule, name).dtype == jnp.float32, name
        np.testing.assert_allclose(got, want[name], rtol=rtol, atol=0, err_msg=name)


def test_linear_schedule_matches_float64_recomputation():
    schedule = diffusion.make_schedule("linear")
    want = reference.tables(reference.linear_betas(1000, 1e-4, 0.02))
    assert schedule.num_timesteps == 1000
    # Tables are built in float64 and rounded once to float32: relative error ≤ 2⁻²⁴ ≈ 6e-8
    # per entry (1e-6 allows for the different summation order of the reference).
    assert_tables_close(schedule, want, rtol=1e-6)
    assert float(schedule.betas[0]) == pytest.approx(1e-4, rel=1e-7)
    assert float(schedule.betas[-1]) == pytest.approx(0.02, rel=1e-7)
    # ᾱ_T ≈ 4.0e-5 for Ho et al.'s schedule: x_T is (almost) pure noise.
    assert float(schedule.alphas_cumprod[-1]) == pytest.approx(4.036e-5, rel=1e-3)


def test_cosine_schedule_matches_float64_recomputation_and_clips_at_0999():
    num = 1000
    schedule = diffusion.make_schedule("cosine", num_timesteps=num)
    alpha_bar = reference.cosine_alpha_bar(num, s=0.008)
    unclipped = np.array([1.0 - alpha_bar[i + 1] / alpha_bar[i] for i in range(num)])
    betas = np.minimum(unclipped, 0.999)
    # The clip is active: the last unclipped β is exactly 1 (f(T) = cos²(π/2) = 0).
    assert unclipped[-1] > 0.999 and np.sum(unclipped > 0.999) >= 1
    assert float(schedule.betas[-1]) == pytest.approx(0.999, rel=1e-7)
    assert np.all(np.asarray(schedule.betas) <= np.float32(0.999))
    assert_tables_close(schedule, reference.tables(betas), rtol=1e-6)
    # Before the clip matters, ᾱ is f(τ)/f(0) itself (Nichol & Dhariwal, Eq. 17).
    np.testing.assert_allclose(
        np.asarray(schedule.alphas_cumprod[:-1]), alpha_bar[1:num], rtol=2e-6, atol=1e-12
    )


def test_posterior_variance_edge_entries():
    schedule = diffusion.make_schedule("linear", num_timesteps=50)
    assert float(schedule.posterior_variance[0]) == 0.0
    assert float(schedule.posterior_log_variance_clipped[0]) == float(
        schedule.posterior_log_variance_clipped[1]
    )
    assert float(schedule.large_variance[0]) == float(schedule.posterior_variance[1])
    np.testing.assert_array_equal(schedule.large_variance[1:], schedule.betas[1:])
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(schedule))


def test_schedule_is_a_pytree_that_round_trips_through_jit():
    schedule = diffusion.make_schedule("cosine", num_timesteps=64)
    leaves, treedef = jax.tree.flatten(schedule)
    assert len(leaves) == len(FIELDS)
    assert isinstance(jax.tree.unflatten(treedef, leaves), diffusion.Schedule)
    out = jax.jit(lambda s: s)(schedule)
    assert isinstance(out, diffusion.Schedule)
    for a, b in zip(jax.tree.leaves(out), leaves, strict=True):
        np.testing.assert_array_equal(a, b)

    traces = []

    @jax.jit
    def last_alpha_bar(s):
        traces.append(1)
        # num_timesteps comes from the shape, so it is a Python int even while tracing.
        assert isinstance(s.num_timesteps, int)
        return s.alphas_cumprod[s.num_timesteps - 1]

    np.testing.assert_array_equal(last_alpha_bar(schedule), schedule.alphas_cumprod[-1])
    # A different schedule of the same length reuses the compiled function.
    last_alpha_bar(diffusion.make_schedule("linear", num_timesteps=64))
    assert len(traces) == 1
    doubled = jax.tree.map(lambda x: 2 * x, schedule)
    np.testing.assert_array_equal(doubled.betas, 2 * schedule.betas)


def test_dtype_option():
    schedule = diffusion.make_schedule(num_timesteps=10, dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(schedule))


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown schedule kind 'quadratic'"):
        diffusion.make_schedule("quadratic")
    with pytest.raises(ValueError, match="at least 2"):
        diffusion.make_schedule(num_timesteps=1)
    with pytest.raises(TypeError, match="num_timesteps must be an int"):
        diffusion.make_schedule(num_timesteps=10.0)
    with pytest.raises(ValueError, match="beta_start <= beta_end"):
        diffusion.make_schedule(beta_start=0.0)
    with pytest.raises(ValueError, match="max_beta"):
        diffusion.make_schedule("cosine", max_beta=1.0)
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\)"):
        diffusion.schedule_from_betas(np.array([0.1, 1.0]))
