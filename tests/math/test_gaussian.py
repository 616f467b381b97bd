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


# --- every finite float32 log-variance -------------------------------------------------------

F32 = np.finfo(np.float32)
EXTREME_LOGVARS = np.array(
    [-F32.max, -3e38, -1e30, -1e4, -400, -360, -200, -180, -100, -89, -88, -20, -1, -1e-6, 0,
     1e-30, 1e-6, 1, 20, 87.5, 88, 88.8, 89, 89.3, 100, 180, 200, 360, 400, 1e4, 1e30, 3e38,
     F32.max], np.float32)
# XLA flushes subnormal numbers to zero, so the smallest mean magnitude is the smallest normal.
EXTREME_MEANS = np.array([-F32.max, -3e38, -1e20, -1, -F32.tiny, 0, 1e-30, 1, 2.5, 1e20, 3e38,
                          F32.max], np.float32)


def half_expm1_minus_identity_f64(lv1, lv2):
    d = lv1.astype(np.float64) - lv2
    with np.errstate(over="ignore", invalid="ignore"):
        return 0.5 * (np.expm1(d) - d), d


def half_squared_over_variance_f64(a, b, lv):
    delta = a.astype(np.float64) - b
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        value = 0.5 * delta**2 * np.exp(-lv.astype(np.float64))
    return np.where(delta == 0, 0.0, value)  # 0 · e^{huge} is 0 for the true function


def assert_matches_f64(got, want, scale):
    """`got` (float32) equals the float64 `want` to 8 ulps of `scale` (values below the smallest
    normal float32 may be flushed to 0, as XLA does); ±inf exactly where `want` is beyond
    float32's range; never NaN."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert not np.any(np.isnan(got)), "NaN"
    beyond = np.abs(want) > float(F32.max) * (1 + 1e-5)
    np.testing.assert_array_equal(got[beyond], np.sign(want[beyond]) * np.inf)
    inside = np.abs(want) < float(F32.max) * (1 - 1e-5)
    assert np.all(np.isfinite(got[inside]))
    tol = 8 * F32.eps * scale[inside] + F32.tiny
    err = np.abs(got[inside] - want[inside])
    worst = np.argmax(err / tol)
    assert np.all(err <= tol), (got[inside][worst], want[inside][worst], tol[worst])


def test_gaussian_kl_exact_or_inf_for_every_finite_float32_log_variance():
    m1, lv1, m2, lv2 = (a.ravel() for a in np.meshgrid(EXTREME_MEANS, EXTREME_LOGVARS,
                                                        EXTREME_MEANS, EXTREME_LOGVARS))
    got = jaxgen.gaussian_kl(m1, lv1, m2, lv2)
    term1, d = half_expm1_minus_identity_f64(lv1, lv2)
    mean_term = half_squared_over_variance_f64(m1, m2, lv2)
    want = term1 + mean_term
    # Scale: the terms' sizes; ½|e^d − 1|·|d| covers rounding d = lv1 − lv2 in float32.
    with np.errstate(over="ignore", invalid="ignore"):
        scale = 0.5 * np.abs(np.expm1(d)) * (1 + np.abs(d)) + 0.5 * np.abs(d) + mean_term
    assert_matches_f64(got, want, scale)
    assert np.count_nonzero(np.isfinite(np.asarray(got))) > len(got) // 3  # not all trivial
    # Equal distributions: exactly 0, even at ±3.4e38.
    m, lv = (a.ravel() for a in np.meshgrid(EXTREME_MEANS, EXTREME_LOGVARS))
    np.testing.assert_array_equal(np.asarray(jaxgen.gaussian_kl(m, lv, m, lv)), 0.0)


def test_standard_normal_kl_exact_or_inf_for_every_finite_float32_log_variance():
    m, lv = (a.ravel() for a in np.meshgrid(EXTREME_MEANS, EXTREME_LOGVARS))
    got = jaxgen.standard_normal_kl(m, lv)
    term1, d = half_expm1_minus_identity_f64(lv, np.zeros_like(lv))
    want = term1 + 0.5 * m.astype(np.float64) ** 2
    with np.errstate(over="ignore", invalid="ignore"):
        scale = 0.5 * np.abs(np.expm1(d)) * (1 + np.abs(d)) + 0.5 * np.abs(d) + want
    assert_matches_f64(got, want, scale)
    np.testing.assert_array_equal(np.asarray(jaxgen.standard_normal_kl(0.0 * m, 0.0 * lv)), 0.0)


def test_gaussian_log_prob_exact_or_minus_inf_for_every_finite_float32_log_variance():
    x, m, lv = (a.ravel() for a in np.meshgrid(EXTREME_MEANS, EXTREME_MEANS, EXTREME_LOGVARS))
    got = jaxgen.gaussian_log_prob(x, m, lv)
    mean_term = half_squared_over_variance_f64(x, m, lv)
    want = -0.5 * (np.log(2 * np.pi) + lv.astype(np.float64)) - mean_term
    assert_matches_f64(got, want, 0.5 * np.abs(np.log(2 * np.pi) + lv) + mean_term)
    # At x = μ the density is finite for every log-variance (it was NaN from 0 · e^{3e38}).
    at_mean = np.asarray(jaxgen.gaussian_log_prob(m, m, lv))
    assert np.all(np.isfinite(at_mean))


def test_extreme_cases_by_hand():
    f32 = np.float32
    # d = −6e38 overflows float32, the KL ½(e^d − 1 − d) ≈ 3e38 does not.
    np.testing.assert_allclose(float(jaxgen.gaussian_kl(f32(0), f32(-3e38), f32(0), f32(3e38))),
                               3e38, rtol=1e-6)
    # ½e^89 ≈ 2.2e38 though expm1(89) overflows.
    np.testing.assert_allclose(float(jaxgen.gaussian_kl(f32(0), f32(89), f32(0), f32(0))),
                               0.5 * np.expm1(89.0) - 44.5, rtol=1e-5)
    # (μ₁ − μ₂)² = 1e40 overflows; ½ · 1e40 · e^{−100} = 1.86e-4 does not.
    np.testing.assert_allclose(float(jaxgen.gaussian_kl(f32(1e20), f32(100), f32(0), f32(100))),
                               0.5 * 1e40 * np.exp(-100.0), rtol=1e-5)
    # μ₁ − μ₂ = 6e38 overflows; with log σ₂² = 170 the mean term is 1.8e77 · e^{−170} = 2.7e3.
    np.testing.assert_allclose(
        float(jaxgen.gaussian_kl(f32(3e38), f32(170), f32(-3e38), f32(170))),
        0.5 * 6e38**2 * np.exp(-170.0), rtol=1e-5)
    assert float(jaxgen.gaussian_kl(f32(1), f32(0), f32(0), f32(-3e38))) == np.inf
    assert float(jaxgen.gaussian_log_prob(f32(1), f32(0), f32(-3e38))) == -np.inf
    np.testing.assert_allclose(float(jaxgen.gaussian_log_prob(f32(0), f32(0), f32(-3e38))),
                               1.5e38, rtol=1e-6)


def test_gradients_are_never_nan_at_extreme_inputs():
    m1, lv1, m2, lv2 = (jnp.asarray(a.ravel()) for a in np.meshgrid(
        EXTREME_MEANS, EXTREME_LOGVARS, EXTREME_MEANS, EXTREME_LOGVARS))
    for f, args in ((jaxgen.gaussian_kl, (m1, lv1, m2, lv2)),
                    (jaxgen.standard_normal_kl, (m1, lv1)),
                    (jaxgen.gaussian_log_prob, (m1, m2, lv2))):
        grads = jax.grad(lambda *a, f=f: f(*a).sum(), argnums=tuple(range(len(args))))(*args)
        for g in grads:
            assert not np.any(np.isnan(np.asarray(g))), f.__name__
