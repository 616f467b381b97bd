"""gaussian_kl, standard_normal_kl, gaussian_log_prob, reparameterize vs independent references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen


def kl_closed_form_f64(m1, lv1, m2, lv2):
    """KL(N(m1, s1²) ‖ N(m2, s2²)) = log(s2/s1) + (s1² + (m1−m2)²)/(2 s2²) − ½, in float64."""
    m1, lv1, m2, lv2 = (np.asarray(a, np.float64) for a in (m1, lv1, m2, lv2))
    s1sq, s2sq = np.exp(lv1), np.exp(lv2)
    return 0.5 * (lv2 - lv1) + (s1sq + (m1 - m2) ** 2) / (2 * s2sq) - 0.5


# A grid over means and log-variances including the extremes ±20.
LOGVARS = [-20.0, -5.0, -1.0, 0.0, 0.5, 3.0, 20.0]
MEANS = [-3.0, 0.0, 1.5]
GRID = np.array(list(itertools.product(MEANS, LOGVARS, MEANS, LOGVARS)), np.float32).T


def test_gaussian_kl_matches_float64_closed_form_on_grid():
    m1, lv1, m2, lv2 = GRID
    got = np.asarray(jaxgen.gaussian_kl(m1, lv1, m2, lv2), np.float64)
    want = kl_closed_form_f64(m1, lv1, m2, lv2)
    assert np.all(np.isfinite(got))
    # float32 arithmetic: relative 1e-5, plus an absolute floor for KLs near zero.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gaussian_kl_is_exactly_zero_with_finite_gradients_for_equal_distributions():
    m = jnp.array([-3.0, 0.0, 2.0, 0.0, 1.0], jnp.float32)
    lv = jnp.array([-20.0, -1.0, 0.0, 20.0, 5.0], jnp.float32)
    kl = jaxgen.gaussian_kl(m, lv, m, lv)
    np.testing.assert_array_equal(np.asarray(kl), 0.0)
    grads = jax.grad(lambda *a: jaxgen.gaussian_kl(*a).sum(), argnums=(0, 1, 2, 3))(m, lv, m, lv)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
        np.testing.assert_allclose(np.asarray(g), 0.0, atol=1e-6)


def test_gaussian_kl_gradients_finite_at_extreme_log_variances():
    m1, lv1, m2, lv2 = (jnp.asarray(a) for a in GRID)
    grads = jax.grad(lambda *a: jaxgen.gaussian_kl(*a).sum(), argnums=(0, 1, 2, 3))(
        m1, lv1, m2, lv2)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))


def test_gaussian_kl_matches_monte_carlo():
    # KL = E_q[log q(z) − log p(z)], estimated with N = 400,000 samples per case; the check
    # allows 5 standard errors of the estimate.
    n = 400_000
    cases = np.array([[0.3, -0.5, -0.2, 0.4], [1.0, 1.0, 0.0, 0.0], [-2.0, -2.0, 1.0, 1.5]])
    key = jax.random.key(0)
    for i, (m1, lv1, m2, lv2) in enumerate(cases):
        z = jaxgen.reparameterize(jax.random.fold_in(key, i), jnp.full((n,), m1, jnp.float32),
                                  jnp.full((n,), lv1, jnp.float32))
        log_ratio = np.asarray(
            jaxgen.gaussian_log_prob(z, jnp.float32(m1), jnp.float32(lv1))
            - jaxgen.gaussian_log_prob(z, jnp.float32(m2), jnp.float32(lv2)), np.float64)
        estimate, stderr = log_ratio.mean(), log_ratio.std() / np.sqrt(n)
        exact = float(jaxgen.gaussian_kl(jnp.float32(m1), jnp.float32(lv1), jnp.float32(m2),
                                         jnp.float32(lv2)))
        assert abs(estimate - exact) < 5 * stderr + 1e-4, (i, estimate, exact, stderr)


def test_standard_normal_kl_matches_textbook_formula_and_general_kl():
    m, lv = GRID[0], GRID[1]
    want = -0.5 * (1 + lv.astype(np.float64) - m.astype(np.float64) ** 2 - np.exp(lv))
    got = np.asarray(jaxgen.standard_normal_kl(m, lv))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    general = np.asarray(jaxgen.gaussian_kl(m, lv, np.zeros_like(m), np.zeros_like(lv)))
    np.testing.assert_allclose(got, general, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(jaxgen.standard_normal_kl(0.0 * m, 0.0 * lv)), 0)


def test_gaussian_log_prob_matches_float64_density():
    x = np.linspace(-4, 4, 9, dtype=np.float32)
    m, lv = np.float32(0.5), np.float32(-0.7)
    var = np.exp(np.float64(lv))
    want = -0.5 * np.log(2 * np.pi * var) - (x.astype(np.float64) - m) ** 2 / (2 * var)
    np.testing.assert_allclose(np.asarray(jaxgen.gaussian_log_prob(x, m, lv)), want, rtol=1e-6)


def test_reparameterize_moments_and_gradients():
    mean = jnp.array([1.0, -2.0], jnp.float32)
    logvar = jnp.array([0.0, np.log(0.25)], jnp.float32)
    z = np.asarray(jaxgen.reparameterize(jax.random.key(1), mean, logvar, num_samples=100_000))
    assert z.shape == (100_000, 2)
    # 100k samples: standard error of the mean ≤ 0.0032; of the std ≤ 0.0023.
    np.testing.assert_allclose(z.mean(0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(z.std(0), [1.0, 0.5], atol=0.02)
    g_mean = jax.grad(lambda m: jaxgen.reparameterize(jax.random.key(2), m, logvar).sum())(mean)
    np.testing.assert_allclose(np.asarray(g_mean), 1.0)
    same = jaxgen.reparameterize(jax.random.key(3), mean, logvar)
    np.testing.assert_array_equal(same, jaxgen.reparameterize(jax.random.key(3), mean, logvar))


def test_clear_errors_for_bad_inputs():
    with pytest.raises(TypeError, match="floating-point"):
        jaxgen.gaussian_kl(jnp.zeros(3, jnp.int32), jnp.zeros(3), jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match="broadcast"):
        jaxgen.gaussian_kl(jnp.zeros(3), jnp.zeros(4), jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        jaxgen.reparameterize(jax.random.key(0), jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="num_samples"):
        jaxgen.reparameterize(jax.random.key(0), jnp.zeros(3), jnp.zeros(3), num_samples=0)
