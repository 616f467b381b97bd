"""Forward process, posterior, ε/x₀ conversions and losses vs float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxgen.math import diffusion
from tests.math.diffusion import reference

SCHEDULE = diffusion.make_schedule("linear")
TAB = reference.tables(reference.linear_betas(1000))


def test_q_sample_marginal_mean_and_variance_monte_carlo():
    # 3 cases × 100,000 draws; each mean/variance must be within 5 standard errors.
    n = 100_000
    x0_values = np.array([0.5, -0.7, 1.0], np.float32)
    t_values = np.array([0, 300, 999], np.int32)
    x0 = jnp.asarray(np.repeat(x0_values, n)[:, None])
    t = jnp.asarray(np.repeat(t_values, n))
    x_t, noise = diffusion.q_sample(SCHEDULE, x0, t, jax.random.key(0))
    assert x_t.shape == x0.shape == noise.shape
    np.testing.assert_array_equal(x_t, diffusion.q_sample_from_noise(SCHEDULE, x0, t, noise))
    samples = np.asarray(x_t, np.float64).reshape(3, n)
    for i, (x, ti) in enumerate(zip(x0_values, t_values, strict=True)):
        ab = TAB["alphas_cumprod"][ti]
        mean, var = np.sqrt(ab) * x, 1.0 - ab
        assert abs(samples[i].mean() - mean) < 5 * np.sqrt(var / n), (i, samples[i].mean(), mean)
        assert abs(samples[i].var() - var) < 5 * var * np.sqrt(2.0 / n), (i, samples[i].var(), var)


def test_q_sample_is_deterministic_in_its_key():
    x0 = jnp.zeros((2, 3, 3, 1))
    t = jnp.array([5, 700])
    a, _ = diffusion.q_sample(SCHEDULE, x0, t, jax.random.key(1))
    b, _ = diffusion.q_sample(SCHEDULE, x0, t, jax.random.key(1))
    c, _ = diffusion.q_sample(SCHEDULE, x0, t, jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def bayes_posterior_f64(x0, x_t, t):
    """q(x_{t−1} | x_t, x₀) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x₀), by completing the square.

    q(x_{t−1} | x₀) = N(√ᾱ_{t−1} x₀, 1 − ᾱ_{t−1}) and q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t):
    the precisions add and the mean is the precision-weighted sum of the two natural parameters.
    """
    ab_prev, alpha, beta = TAB["alphas_cumprod_prev"][t], 1.0 - TAB["betas"][t], TAB["betas"][t]
    precision = 1.0 / (1.0 - ab_prev) + alpha / beta
    natural = np.sqrt(ab_prev) * x0 / (1.0 - ab_prev) + np.sqrt(alpha) * x_t / beta
    return natural / precision, 1.0 / precision


def test_q_posterior_matches_bayes_rule():
    t = np.array([1, 2, 10, 250, 998, 999], np.int32)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, size=(6, 4)).astype(np.float32)
    x_t = rng.normal(size=(6, 4)).astype(np.float32)
    mean, var, log_var = diffusion.q_posterior(SCHEDULE, x0, x_t, jnp.asarray(t))
    assert mean.shape == var.shape == log_var.shape == (6, 4)
    want_mean, want_var = bayes_posterior_f64(
        x0.astype(np.float64), x_t.astype(np.float64), t[:, None]
    )
    # float32 coefficients (relative 1e-6) times inputs of size ≤ 3.
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, np.broadcast_to(want_var, (6, 4)), rtol=1e-5)
    np.testing.assert_allclose(log_var, np.log(np.broadcast_to(want_var, (6, 4))), rtol=1e-5)


def test_q_posterior_matches_numerical_product_of_densities_on_a_grid():
    # Independent of any algebra: multiply the two densities on a grid of 200,001 points and
    # take the normalised first two moments (trapezoid error ≪ 1e-8 at this resolution).
    t, x0, x_t = 400, 0.6, -0.3
    grid = np.linspace(-6, 6, 200_001)
    ab_prev, beta = TAB["alphas_cumprod_prev"][t], TAB["betas"][t]
    density = stats.norm.pdf(x_t, np.sqrt(1 - beta) * grid, np.sqrt(beta)) * stats.norm.pdf(
        grid, np.sqrt(ab_prev) * x0, np.sqrt(1 - ab_prev)
    )
    density /= np.trapezoid(density, grid)
    want_mean = np.trapezoid(grid * density, grid)
    want_var = np.trapezoid((grid - want_mean) ** 2 * density, grid)
    mean, var, _ = diffusion.q_posterior(
        SCHEDULE, jnp.full((1, 1), x0), jnp.full((1, 1), x_t), jnp.array([t])
    )
    np.testing.assert_allclose(float(mean[0, 0]), want_mean, rtol=1e-5)
    np.testing.assert_allclose(float(var[0, 0]), want_var, rtol=1e-5)


def test_q_posterior_at_index_zero_is_a_point_mass_at_x0():
    x0 = jnp.array([[0.25, -0.5]])
    x_t = jnp.array([[3.0, 1.0]])
    mean, var, log_var = diffusion.q_posterior(SCHEDULE, x0, x_t, jnp.array([0]))
    np.testing.assert_allclose(mean, x0, rtol=1e-6)
    np.testing.assert_array_equal(var, 0.0)
    np.testing.assert_allclose(log_var, np.log(TAB["posterior_variance"][1]), rtol=1e-6)


def test_model_mean_with_true_noise_equals_posterior_mean():
    key_x, key_n = jax.random.split(jax.random.key(3))
    x0 = jax.random.uniform(key_x, (8, 4, 4, 1), minval=-1, maxval=1)
    t = jnp.array([0, 1, 5, 100, 400, 700, 998, 999])

    @jax.jit  # one compilation instead of op-by-op dispatch
    def compute(x0, t, key):
        x_t, noise = diffusion.q_sample(SCHEDULE, x0, t, key)
        return dict(
            noise=noise,
            posterior_mean=diffusion.q_posterior(SCHEDULE, x0, x_t, t)[0],
            model_mean=diffusion.model_mean_from_eps(SCHEDULE, x_t, t, noise),
            p_mean_and_x0=diffusion.p_mean_variance(SCHEDULE, x_t, t, noise)[::3],
            x0_from_eps=diffusion.predict_x0_from_eps(SCHEDULE, x_t, t, noise),
            eps_from_x0=diffusion.predict_eps_from_x0(SCHEDULE, x_t, t, x0),
        )

    out = compute(x0, t, key_n)
    # The two formulas agree exactly in real arithmetic; float32 cancellation near t = T−1
    # (1/√ᾱ ≈ 157) leaves errors of a few 1e-5.
    np.testing.assert_allclose(out["model_mean"], out["posterior_mean"], atol=1e-4)
    via_x0, x0_pred = out["p_mean_and_x0"]
    np.testing.assert_allclose(via_x0, out["model_mean"], atol=1e-4)
    np.testing.assert_allclose(x0_pred, x0, atol=1e-3)
    np.testing.assert_allclose(out["x0_from_eps"], x0, atol=1e-3)
    np.testing.assert_allclose(out["eps_from_x0"], out["noise"], atol=1e-3, rtol=1e-3)


def test_model_mean_matches_float64_formula():
    rng = np.random.default_rng(4)
    x_t = rng.normal(size=(3, 5)).astype(np.float32)
    eps = rng.normal(size=(3, 5)).astype(np.float32)
    t = np.array([0, 37, 999])
    beta, ab = TAB["betas"][t, None], TAB["alphas_cumprod"][t, None]
    alpha = 1 - beta
    want = (x_t - beta / np.sqrt(1 - ab) * eps) / np.sqrt(alpha)
    got = diffusion.model_mean_from_eps(SCHEDULE, x_t, jnp.asarray(t), eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_l_simple_per_example_and_zero_for_perfect_predictor():
    rng = np.random.default_rng(5)
    eps = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
    pred = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
    loss = diffusion.l_simple(eps, pred)
    assert loss.shape == (3,)
    want = ((eps.astype(np.float64) - pred) ** 2).reshape(3, -1).mean(1)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_array_equal(diffusion.l_simple(eps, eps), 0.0)


def test_vlb_weight_turns_squared_error_into_the_kl_term():
    # For t ≥ 1 with σ² = β̃: KL(q ‖ p_θ) per dimension = λ_t (ε − ε_θ)², checked against the
    # bound term itself and the float64 formula β²/(2σ²α(1−ᾱ)).
    rng = np.random.default_rng(6)
    t = np.array([1, 20, 500, 999], np.int32)
    x0 = rng.uniform(-1, 1, size=(4, 6)).astype(np.float32)
    eps = rng.normal(size=(4, 6)).astype(np.float32)
    eps_pred = (eps + 0.3 * rng.normal(size=(4, 6))).astype(np.float32)
    x_t = diffusion.q_sample_from_noise(SCHEDULE, x0, jnp.asarray(t), eps)
    weight = diffusion.vlb_weight(SCHEDULE, jnp.asarray(t))
    beta, ab = TAB["betas"][t], TAB["alphas_cumprod"][t]
    want_weight = beta**2 / (2 * TAB["posterior_variance"][t] * (1 - beta) * (1 - ab))
    np.testing.assert_allclose(weight, want_weight, rtol=1e-5)
    kl_bits = jax.jit(diffusion.vlb_term)(SCHEDULE, x0, x_t, jnp.asarray(t), eps_pred)
    sq = ((eps.astype(np.float64) - eps_pred) ** 2).mean(1)
    # μ̃ − μ_θ is a float32 difference of O(1) means a few 1e-3 apart: relative 1e-3.
    np.testing.assert_allclose(kl_bits * np.log(2), want_weight * sq, rtol=1e-3)


def test_sample_timesteps_uniform_over_range():
    t = diffusion.sample_timesteps(jax.random.key(7), SCHEDULE, 10_000)
    assert t.shape == (10_000,) and t.dtype == jnp.int32
    # 10,000 draws: every end value appears (P(missing) ≈ 5e-5), mean within 5 SE (SE ≈ 2.9).
    assert int(t.min()) == 0 and int(t.max()) == 999
    assert abs(float(t.mean()) - 499.5) < 5 * 288.7 / 100


def test_functions_work_under_jit():
    x0 = jnp.zeros((2, 3))
    t = jnp.array([3, 9])
    f = jax.jit(lambda s, x, t, k: diffusion.q_sample(s, x, t, k)[0])
    eager, _ = diffusion.q_sample(SCHEDULE, x0, t, jax.random.key(0))
    # XLA may fuse the multiply-add differently: equal up to float32 rounding.
    np.testing.assert_allclose(f(SCHEDULE, x0, t, jax.random.key(0)), eager, rtol=1e-6)


def test_out_of_range_timesteps_under_jit_give_nan_not_a_wrapped_entry():
    # Traced timesteps cannot be range-checked; they must not silently read table[-1].
    x0, noise = jnp.ones((3, 2)), jnp.ones((3, 2))
    x_t = jax.jit(diffusion.q_sample_from_noise)(SCHEDULE, x0, jnp.array([5, -1, 1000]), noise)
    assert np.all(np.isfinite(x_t[0])) and np.all(np.isnan(x_t[1:]))


def test_clear_errors_for_bad_inputs():
    x0 = jnp.zeros((2, 3))
    with pytest.raises(TypeError, match="integer array of 0-based timesteps"):
        diffusion.q_sample(SCHEDULE, x0, jnp.array([1.0, 2.0]), jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \[B\] = \(2,\)"):
        diffusion.q_sample(SCHEDULE, x0, jnp.array([1, 2, 3]), jax.random.key(0))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 999\]"):
        diffusion.q_sample(SCHEDULE, x0, jnp.array([0, 1000]), jax.random.key(0))
    with pytest.raises(TypeError, match="floating-point"):
        diffusion.q_sample(
            SCHEDULE, jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]), jax.random.key(0)
        )
    with pytest.raises(ValueError, match="same shape"):
        diffusion.l_simple(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="unknown variance 'medium'"):
        diffusion.model_variance(SCHEDULE, jnp.array([0, 1]), x0, variance="medium")


# --- timestep dtypes -------------------------------------------------------------------------

X0 = jnp.asarray((2 * np.arange(0, 240, 20).reshape(4, 3) / 255 - 1), jnp.float32)  # 8-bit grid
X_T = jnp.asarray(np.linspace(-2, 2, 4 * 3).reshape(4, 3), jnp.float32)
EPS = jnp.asarray(np.linspace(1, -1, 4 * 3).reshape(4, 3), jnp.float32)
# Every public function that takes timesteps t, as f(t) -> a pytree of arrays.
TIMESTEP_FUNCTIONS = {
    "q_sample": lambda t: diffusion.q_sample(SCHEDULE, X0, t, jax.random.key(0)),
    "q_sample_from_noise": lambda t: diffusion.q_sample_from_noise(SCHEDULE, X0, t, EPS),
    "q_posterior": lambda t: diffusion.q_posterior(SCHEDULE, X0, X_T, t),
    "predict_x0_from_eps": lambda t: diffusion.predict_x0_from_eps(SCHEDULE, X_T, t, EPS),
    "predict_eps_from_x0": lambda t: diffusion.predict_eps_from_x0(SCHEDULE, X_T, t, X0),
    "model_mean_from_eps": lambda t: diffusion.model_mean_from_eps(SCHEDULE, X_T, t, EPS),
    "model_variance": lambda t: diffusion.model_variance(SCHEDULE, t, X_T, variance="large"),
    "p_mean_variance": lambda t: diffusion.p_mean_variance(SCHEDULE, X_T, t, EPS, clip_x0=True),
    "vlb_weight": lambda t: diffusion.vlb_weight(SCHEDULE, t),
    "vlb_term": lambda t: diffusion.vlb_term(SCHEDULE, X0, X_T, t, EPS),
}
INTEGER_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
T_VALUES = np.array([0, 1, 100, 127])  # fits every integer dtype


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", sorted(TIMESTEP_FUNCTIONS))
def test_every_integer_timestep_dtype_gives_the_int32_result(name):
    f = TIMESTEP_FUNCTIONS[name]
    want, want_jit = f(T_VALUES.astype(np.int32)), jax.jit(f)(T_VALUES.astype(np.int32))
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(want))
    for dtype in INTEGER_DTYPES:
        t = T_VALUES.astype(dtype)
        assert_trees_equal(f(t), want)  # NumPy input
        assert_trees_equal(f(jnp.asarray(t)), want)  # jax.Array (64-bit ones narrowed by JAX)
        assert_trees_equal(jax.jit(f)(t), want_jit)


@pytest.mark.parametrize("dtype", ["float32", "bool", "int4", "complex64"])
def test_other_timestep_dtypes_are_refused_by_name(dtype):
    t = jnp.asarray(np.array([0, 1, 1, 0]).astype(dtype) if dtype != "int4" else
                    jnp.array([0, 1, 1, 0], jnp.int4))
    for f in TIMESTEP_FUNCTIONS.values():
        with pytest.raises(TypeError, match=rf"got dtype {dtype}; use one of int8, int16"):
            f(t)


def test_out_of_range_timesteps_of_small_dtypes_under_jit_give_nan():
    # Traced values are not range-checked. T = 200: uint8 250 is out of range, int8 127 in.
    schedule = diffusion.make_schedule("linear", num_timesteps=200)
    x0, noise = jnp.ones((3, 2)), jnp.ones((3, 2))
    f = jax.jit(diffusion.q_sample_from_noise)
    for t, finite in ((np.array([5, 250, 199], np.uint8), [1, 0, 1]),
                      (np.array([127, -1, -128], np.int8), [1, 0, 0]),
                      (np.array([3, 2**31 + 3, 2**32 - 1], np.uint32), [1, 0, 0]),
                      (np.array([3, 200, 32767], np.int16), [1, 0, 0])):
        x_t = np.asarray(f(schedule, x0, t, noise))
        np.testing.assert_array_equal(np.isfinite(x_t).all(axis=1), np.array(finite, bool))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 199\], got values in \[5.0, 250"):
        diffusion.q_sample_from_noise(schedule, x0, np.array([5, 250, 199], np.uint8), noise)
