"""Discretized decoder, prior term and bits/dim vs float64 references and closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from jaxgen.math import diffusion
from tests.math.diffusion import reference

SCHEDULE = diffusion.make_schedule("linear")
TAB = reference.tables(reference.linear_betas(1000))
LEVELS = np.arange(256) * 2.0 / 255.0 - 1.0  # the 8-bit grid in [−1, 1]
# Jitted once (the eager versions are checked for their errors at the end).
log_likelihood = jax.jit(diffusion.discretized_gaussian_log_likelihood)
vlb_term = jax.jit(diffusion.vlb_term, static_argnames=("variance", "clip_x0"))


def bin_log_probs_f64(x, mean, log_scale):
    """log P(bin of x) for N(mean, e^{2 log_scale}) in float64; edge bins reach ±∞.

    The bin edges are the float32 numbers (k ± ½)·2/255 − 1 that jaxgen uses: their rounding
    (≈ 6e-8) moves log p by up to |z|·6e-8/σ, which at σ = e^−6 would exceed the tolerance
    and is a property of float32 inputs, not of the CDF arithmetic under test. Everything
    after the edges is float64, with Φ(b) − Φ(a) taken from the tail that avoids cancellation.
    """
    level = np.round((np.asarray(x, np.float64) + 1) * 127.5).astype(np.float32)
    step, one = np.float32(2 / 255), np.float32(1)
    upper_edge = ((level + np.float32(0.5)) * step - one).astype(np.float64)
    lower_edge = ((level - np.float32(0.5)) * step - one).astype(np.float64)
    mean = np.asarray(mean, np.float64)
    sd = np.exp(np.asarray(log_scale, np.float64))
    a = np.where(level == 0, -np.inf, (lower_edge - mean) / sd)
    b = np.where(level == 255, np.inf, (upper_edge - mean) / sd)
    p = np.where(a > 0, special.ndtr(-a) - special.ndtr(-b), special.ndtr(b) - special.ndtr(a))
    with np.errstate(divide="ignore"):
        return np.log(p)  # −inf where p underflows float64 (beyond ~38 standard deviations)


def bin_log_prob_grads_f64(x, mean, log_scale):
    """∂/∂mean and ∂/∂log_scale of log P(bin of x), in float64 and exact however deep the tail.

    Same float32 edges as :func:`bin_log_probs_f64`, then float64 throughout, independently of
    jaxgen's arithmetic (SciPy's erfcx, not a series). An interior bin is reflected to
    lo < hi, lo + hi ≤ 0, so that φ(lo) ≤ φ(hi), and P = Φ(hi) − Φ(lo) and its derivatives are
    divided by φ(hi), which leaves nothing to underflow: with the Mills ratio
    R = Φ/φ = √(π/2) erfcx(−x/√2) and c = log(φ(lo)/φ(hi)) = (hi − lo)(hi + lo)/2 ≤ 0,
    P/φ(hi) = R(hi) − e^c R(lo) =: D, ∂log P/∂hi = 1/D and ∂log P/∂lo = −e^c/D. A bin with
    hi > 0 is near the mean and uses Φ and φ directly; an edge bin, log Φ(b) or log Φ(−a),
    has ∂/∂b log Φ(b) = 1/R(b).
    """
    x, mean, log_scale = np.broadcast_arrays(x, mean, log_scale)
    level = np.round((np.asarray(x, np.float64) + 1) * 127.5).astype(np.float32)
    step, one = np.float32(2 / 255), np.float32(1)
    upper_edge = ((level + np.float32(0.5)) * step - one).astype(np.float64)
    lower_edge = ((level - np.float32(0.5)) * step - one).astype(np.float64)
    mean = np.asarray(mean, np.float64)
    inv_sd = np.exp(-np.asarray(log_scale, np.float64))
    a, b = (lower_edge - mean) * inv_sd, (upper_edge - mean) * inv_sd
    flip = a + b > 0
    hi, lo = np.where(flip, -a, b), np.where(flip, -b, a)
    # ∂hi/∂mean = ∂lo/∂mean = −1/σ, or +1/σ when reflected; ∂hi/∂log σ = −hi, likewise lo.
    dz_dmean = np.where(flip, inv_sd, -inv_sd)

    def mills(t):  # Φ(t)/φ(t), for t ≤ 0
        return math.sqrt(math.pi / 2) * special.erfcx(-np.minimum(t, 0.0) / math.sqrt(2))

    def pdf(t):
        return np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    def hazard(t):  # φ(t)/Φ(t) = ∂/∂t log Φ(t)
        return np.where(t <= 0, 1 / mills(t), pdf(t) / special.ndtr(t))

    with np.errstate(all="ignore"):  # np.where evaluates both branches
        c = 0.5 * (b - a) * (hi + lo)
        d = mills(hi) - np.exp(c) * mills(lo)
        p = special.ndtr(hi) - special.ndtr(lo)
        near = hi > 0
        d_hi = np.where(near, pdf(hi) / p, 1 / d)
        d_lo = np.where(near, -pdf(lo) / p, -np.exp(c) / d)
        grad_mean = dz_dmean * (d_hi + d_lo)
        grad_log_scale = -hi * d_hi - lo * d_lo
        first, last = hazard(b), hazard(-a)  # level 0: log Φ(b); level 255: log Φ(−a)
    grad_mean = np.where(
        level == 0, -inv_sd * first, np.where(level == 255, inv_sd * last, grad_mean)
    )
    grad_log_scale = np.where(
        level == 0, -b * first, np.where(level == 255, a * last, grad_log_scale)
    )
    return grad_mean, grad_log_scale


MEANS = [-1.3, -1.0, -0.5, 0.0, 0.3, 1.0 - 1 / 255, 1.0, 1.4]


@pytest.mark.parametrize("log_scale", [-20.0, -8.0, -4.0, -1.0, 0.0, 1.0, 3.0, 20.0])
def test_discretized_probabilities_sum_to_one_over_256_bins(log_scale):
    x = np.broadcast_to(LEVELS, (len(MEANS), 256)).astype(np.float32)
    mean = np.array(MEANS, np.float32)[:, None]
    log_p = np.asarray(log_likelihood(x, mean, np.float32(log_scale)), np.float64)
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= 1e-6)
    # Summed in float64; each float32 bin is accurate to ~1e-6 relative (5e-6 midpoint rule).
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, atol=2e-5)


@pytest.mark.parametrize("log_scale", [-6.0, -4.5, -3.0, -1.0, 0.5, 3.0])
def test_discretized_log_probs_match_float64_reference(log_scale):
    x = np.broadcast_to(LEVELS, (len(MEANS), 256)).astype(np.float32)
    mean = np.array(MEANS, np.float32)[:, None]
    got = np.asarray(log_likelihood(x, mean, np.float32(log_scale)), np.float64)
    want = bin_log_probs_f64(x, mean, log_scale)
    finite = np.isfinite(want)
    assert finite.sum() >= 100  # a real comparison at every scale
    # Absolute 2e-5 in log p (i.e. relative in p) plus relative 1e-5 for far-tail log p.
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=2e-5)
    # Where float64 underflows (p < 1e-308), the float32 log-probability is still finite.
    assert np.all(np.isfinite(got)) and np.all(got[~finite] < -700)


def test_discretized_limits_and_gradients_at_extreme_log_scales():
    f = log_likelihood
    centre = np.float32(LEVELS[100])
    # σ = e^−20: all mass on the bin holding the mean; a mean on a bin edge splits it in two.
    np.testing.assert_allclose(f(centre, centre, -20.0), 0.0, atol=1e-6)
    # A mean on the edge between two levels: their probabilities add up to 1 whatever the split.
    edge = np.float32(centre + 1 / 255)
    pair = np.exp(np.asarray(f(np.float32(LEVELS[100:102]), edge, -20.0), np.float64))
    np.testing.assert_allclose(pair.sum(), 1.0, atol=1e-6)
    assert float(f(np.float32(LEVELS[120]), centre, -20.0)) < -1e10
    # σ = e^20: an interior bin has probability (2/255) φ(0)/σ; each edge bin about ½.
    want = math.log(2 / 255) - 20.0 - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(f(centre, centre, 20.0), want, rtol=1e-6)
    np.testing.assert_allclose(f(np.float32(1.0), centre, 20.0), math.log(0.5), atol=1e-6)

    # Gradients over a grid of means × log-scales × all levels, in one call: a NaN or inf in
    # any element would reach the per-argument sums.
    means = jnp.array([-1.0, 0.0, float(LEVELS[100]) + 1 / 255, 0.7], jnp.float32)
    log_scales = jnp.array([-20.0, -5.0, 0.0, 5.0, 20.0], jnp.float32)
    x = jnp.asarray(LEVELS, jnp.float32)
    grads = jax.jit(jax.grad(
        lambda m, s: f(x[None, None, :], m[:, None, None], s[None, :, None]).sum(), argnums=(0, 1)
    ))(means, log_scales)
    assert all(np.all(np.isfinite(g)) for g in grads), grads


def test_discretized_gradients_match_float64_reference_in_the_deep_tails():
    # Every level against means inside and outside [−1, 1] and far outside (±1e4: there the bins
    # are narrow against 1/z even deep in the tail, so log(1 − e^d) has a say), for
    # σ = e^−15…e^4: z = |x − μ|/σ from 0 to beyond 1e10. jax's log_ndtr differentiates as
    # exp(log φ(z) − log Φ(z)), a float32 difference of two numbers near −z²/2: before the
    # fix the largest relative errors below were 3.6e-4 for z in 10…100, 1.6e-2 in 100…1e3,
    # 1.7 in 1e3…1e4 and 540 in 1e4…1e5; beyond, the gradients were about 1/σ, too small by
    # the factor z.
    # The means stay ≥ 1/(2·255) from every bin edge: XLA may round an edge an ulp away from
    # NumPy (a fused multiply-add), which moves the gradient by up to 6e-8/|edge − μ|
    # relative, ≤ 3e-5 here.
    means = np.array(
        [-1e4, -1.3, -1.0, LEVELS[60] + 0.5 / 255, LEVELS[128], 1.0, 1.4, 1e4], np.float32
    )
    log_scales = np.arange(-15.0, 4.01, 0.5, dtype=np.float32)
    x, mean, log_scale = np.broadcast_arrays(
        LEVELS.astype(np.float32), means[:, None, None], log_scales[None, :, None]
    )
    grads = jax.jit(jax.grad(lambda m, s: log_likelihood(x, m, s).sum(), argnums=(0, 1)))
    got_mean, got_log_scale = (np.asarray(g, np.float64) for g in grads(mean, log_scale))
    want_mean, want_log_scale = bin_log_prob_grads_f64(x, mean, log_scale)
    sd = np.exp(log_scale.astype(np.float64))
    z = np.abs(x - mean.astype(np.float64)) / sd
    # Hundreds of bins in every decade of z from 1 to 1e10.
    assert all(np.sum((z >= 10.0**k) & (z < 10.0 ** (k + 1))) > 100 for k in range(10))
    assert np.all(np.isfinite(want_mean)) and np.all(np.isfinite(want_log_scale))
    assert np.all(np.isfinite(got_mean)) and np.all(np.isfinite(got_log_scale))
    # Relative error, against at least the gradients' natural units (1/σ for the mean, 1 for
    # log σ) so that it stays meaningful where a gradient crosses zero (z ≈ 0, z ≈ 1). Measured
    # (CPU): ≤ 3e-7 beyond z = 100; up to 6e-5 for z < 10 next to the midpoint-rule switch,
    # where log Φ(lo) − log Φ(hi) cancels to 2 digits (the body, unchanged by the fix).
    err_mean = np.abs(got_mean - want_mean) / np.maximum(np.abs(want_mean), 1 / sd)
    err_log_scale = np.abs(got_log_scale - want_log_scale) / np.maximum(np.abs(want_log_scale), 1)
    for name, err in (("mean", err_mean), ("log_scale", err_log_scale)):
        worst = np.unravel_index(np.argmax(err), err.shape)
        assert err[worst] < 2e-4, (name, err[worst], "at z =", z[worst], "x, μ, log σ =",
                                   x[worst], mean[worst], log_scale[worst])


def test_decoder_term_matches_float64_computation():
    # vlb_term at t = 0 is −mean_d log p(x₀ | x₁) / log 2, with the bin probability under
    # N(x̂₀, β̃ of index 1), x̂₀ = (x₁ − √(1−ᾱ₀) ε_θ)/√ᾱ₀.
    rng = np.random.default_rng(0)
    x0 = LEVELS[rng.integers(0, 256, size=(3, 8))].astype(np.float32)
    x0[0, :2] = (-1.0, 1.0)  # the edge bins
    noise = rng.normal(size=(3, 8)).astype(np.float32)
    eps_pred = (noise + 0.5 * rng.normal(size=(3, 8))).astype(np.float32)
    t = jnp.zeros((3,), jnp.int32)
    x_t = diffusion.q_sample_from_noise(SCHEDULE, x0, t, noise)
    for variance in ("small", "large"):
        got = vlb_term(SCHEDULE, x0, x_t, t, eps_pred, variance=variance)
        ab = TAB["alphas_cumprod"][0]
        x0_hat = (np.asarray(x_t, np.float64) - np.sqrt(1 - ab) * eps_pred) / np.sqrt(ab)
        log_scale = 0.5 * np.log(TAB["posterior_variance"][1])
        want = -bin_log_probs_f64(x0, x0_hat, log_scale).mean(axis=1) / math.log(2)
        assert np.all(want > 0.1)  # a non-trivial case: the bins are not certain
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_kl_terms_vanish_for_the_true_noise():
    # μ_θ(x_t, ε) = μ̃_t exactly and σ² = β̃ (small): every KL term is 0 (up to float32).
    x0 = jnp.asarray(LEVELS[[10, 200, 128, 40]][:, None] * np.ones((1, 5)), jnp.float32)
    t = jnp.array([1, 50, 500, 999])
    x_t, noise = diffusion.q_sample(SCHEDULE, x0, t, jax.random.key(0))
    kl = vlb_term(SCHEDULE, x0, x_t, t, noise)
    np.testing.assert_allclose(kl, 0.0, atol=1e-4)


def test_prior_term_matches_closed_form():
    x0 = np.array([[-1.0, 0.0, 0.5], [1.0, 1.0, -0.2]], np.float32)
    ab = TAB["alphas_cumprod"][-1]
    mu, var = np.sqrt(ab) * x0.astype(np.float64), 1 - ab
    want = (0.5 * (var + mu**2 - 1 - np.log(var))).mean(axis=1) / math.log(2)
    got = diffusion.prior_bpd(SCHEDULE, x0)
    assert got.shape == (2,)
    # KL ≈ 1e-5 bits/dim is a difference of O(1) float32 terms: absolute tolerance 1e-6.
    np.testing.assert_allclose(got, want, atol=1e-6)


# Gaussian data for the bound: x₀ ~ N(M, S²) per dimension, well inside [−1, 1].
M = np.array([0.1, -0.2])
S = np.array([0.2, 0.15])


def expected_kl_bits_f64(variance):
    """E over x₀ ~ N(M, S²) and x_t ~ q of the KL term, t = 1…T−1, for the optimal ε_θ.

    μ̃_t − μ_θ = c1_t (x₀ − E[x₀ | x_t]), whose second moment is the Gaussian posterior variance
    Var[x₀ | x_t] = s²σ²/(a²s² + σ²). Hence E[KL] = c1² Var/(2σ_θ²) + ½(β̃/σ_θ² − 1 − log(β̃/σ_θ²)).
    """
    ab, c1, post_var = TAB["alphas_cumprod"], TAB["posterior_mean_coef1"], TAB["posterior_variance"]
    model_var = post_var if variance == "small" else TAB["large_variance"]
    ab, c1, post_var, model_var = ab[1:], c1[1:], post_var[1:], model_var[1:]
    out = np.zeros(999)
    for d in range(2):
        var_x0 = S[d] ** 2 * (1 - ab) / (ab * S[d] ** 2 + 1 - ab)
        ratio = post_var / model_var
        out += c1**2 * var_x0 / (2 * model_var) + 0.5 * (ratio - 1 - np.log(ratio))
    # Index 0 is the decoder, not a KL.
    return np.concatenate([[np.nan], out / 2 / math.log(2)])


def gaussian_data(n, seed=0):
    x0 = M + S * np.random.default_rng(seed).normal(size=(n, 2))
    assert np.abs(x0).max() <= 1.0  # a precondition of the decoder term (holds for this seed)
    return jnp.asarray(x0, jnp.float32)


@pytest.mark.parametrize("variance", ["small", "large"])
def test_bits_per_dim_full_sum_matches_closed_form_for_gaussian_data(variance):
    # 1,000 examples, every t; per-term and summed KL must lie within 5 standard errors of
    # the closed form (the standard error is estimated from the same examples; ≈ 0.9% of the
    # 4.73 bits/dim sum).
    n = 1000
    eps_fn = _optimal_eps_fn(SCHEDULE)
    out = jax.jit(
        lambda x0, key: diffusion.bits_per_dim(
            eps_fn, SCHEDULE, x0, key, variance=variance, return_terms=True
        )
    )(gaussian_data(n), jax.random.key(1))
    terms = np.asarray(out["terms"], np.float64)
    assert terms.shape == (n, 1000)
    for name in ("total", "prior", "decoder", "diffusion"):
        assert out[name].shape == (n,) and np.all(np.isfinite(out[name])), name
    np.testing.assert_allclose(
        out["total"], out["prior"] + out["decoder"] + out["diffusion"], rtol=1e-5
    )
    np.testing.assert_array_equal(out["decoder"], terms[:, 0])
    np.testing.assert_allclose(out["prior"], diffusion.prior_bpd(SCHEDULE, gaussian_data(n)))

    exact = expected_kl_bits_f64(variance)
    for t in (1, 2, 10, 100, 500, 999):
        se = terms[:, t].std() / np.sqrt(n)
        assert abs(terms[:, t].mean() - exact[t]) < 5 * se + 1e-6, (t, terms[:, t].mean(), exact[t])
    diffusion_sum = terms[:, 1:].sum(axis=1)
    se = diffusion_sum.std() / np.sqrt(n)
    assert abs(diffusion_sum.mean() - exact[1:].sum()) < 5 * se, (diffusion_sum.mean(), se)
    assert se < 0.02 * exact[1:].sum()  # the check is sharp: 5 SE is under 10% of the value


def test_bits_per_dim_monte_carlo_estimate_is_unbiased():
    # 2,000 examples × K = 4 sampled timesteps: the mean estimate of the KL sum must lie within
    # 5 standard errors of the closed form, and the decoder equals the full mode's (same keys).
    n, k = 2000, 4
    eps_fn = _optimal_eps_fn(SCHEDULE)
    x0 = gaussian_data(n, seed=1)
    out = jax.jit(
        lambda x0, key: diffusion.bits_per_dim(
            eps_fn, SCHEDULE, x0, key, num_timesteps_sampled=k
        )
    )(x0, jax.random.key(2))
    assert set(out) == {"total", "prior", "decoder", "diffusion"}
    estimate = np.asarray(out["diffusion"], np.float64)
    exact = expected_kl_bits_f64("small")[1:].sum()
    se = estimate.std() / np.sqrt(n)
    assert abs(estimate.mean() - exact) < 5 * se, (estimate.mean(), exact, se)
    assert np.all(np.isfinite(out["total"]))


@pytest.mark.parametrize("num_timesteps", [2, 1000])
def test_bits_per_dim_is_exact_when_the_terms_do_not_depend_on_the_noise(num_timesteps):
    # x₀ = 0 and ε_θ(x_t) = x_t/√(1−ᾱ_t) is the exact noise, so μ_θ = μ̃ and with σ² = β_t
    # ("large") every KL term is the variance mismatch ½(r − 1 − log r), r = β̃_t/β_t, whatever
    # the noise. With T = 2 there is a single KL term, so the Monte Carlo estimate
    # (T − 1)·mean must equal it exactly too.
    schedule = diffusion.make_schedule("linear", num_timesteps=num_timesteps)
    tab = reference.tables(reference.linear_betas(num_timesteps))
    ratio = tab["posterior_variance"][1:] / tab["betas"][1:]
    want_terms = 0.5 * (ratio - 1 - np.log(ratio)) / math.log(2)
    x0 = jnp.zeros((3, 2, 2), jnp.float32)

    def eps_fn(x, t):
        return x / schedule.sqrt_one_minus_alphas_cumprod[t][:, None, None]

    full = diffusion.bits_per_dim(
        eps_fn, schedule, x0, jax.random.key(0), variance="large", return_terms=True
    )
    np.testing.assert_allclose(
        full["terms"][:, 1:], np.broadcast_to(want_terms, (3, len(ratio))), rtol=1e-3, atol=1e-7
    )
    np.testing.assert_allclose(full["diffusion"], want_terms.sum(), rtol=1e-3)
    if num_timesteps == 2:
        sampled = diffusion.bits_per_dim(
            eps_fn, schedule, x0, jax.random.key(0), variance="large", num_timesteps_sampled=3
        )
        np.testing.assert_allclose(sampled["diffusion"], want_terms.sum(), rtol=1e-4)
        # Same key: both modes draw the decoder's x₁ from the same derived key (equal up to
        # float32 rounding: one is evaluated inside the scan, the other outside).
        np.testing.assert_allclose(sampled["decoder"], full["decoder"], rtol=1e-4)
        # Every value is per example, [B], unless the terms are asked for.
        assert set(sampled) == {"total", "prior", "decoder", "diffusion"}
        plain = diffusion.bits_per_dim(eps_fn, schedule, x0, jax.random.key(0))
        assert set(plain) == {"total", "prior", "decoder", "diffusion"}


def _optimal_eps_fn(schedule):
    return reference.optimal_eps_fn(schedule, M, S)


def test_clear_errors_for_data_outside_the_unit_interval():
    with pytest.raises(ValueError, match=r"x must lie in \[-1.0, 1.0\].*8-bit data"):
        diffusion.discretized_gaussian_log_likelihood(
            jnp.array([0.0, 1.5]), jnp.float32(0.0), jnp.float32(0.0)
        )
    x0 = jnp.array([[0.0, 2.0]])
    with pytest.raises(ValueError, match=r"x0 must lie in \[-1.0, 1.0\]"):
        diffusion.vlb_term(SCHEDULE, x0, x0, jnp.array([0]), x0)
    with pytest.raises(ValueError, match=r"x0 must lie in \[-1.0, 1.0\]"):
        diffusion.bits_per_dim(lambda x, t: x, SCHEDULE, 255.0 * x0, jax.random.key(0))
    with pytest.raises(ValueError, match="num_timesteps_sampled"):
        diffusion.bits_per_dim(
            lambda x, t: x, SCHEDULE, 0 * x0, jax.random.key(0), num_timesteps_sampled=0
        )
    with pytest.raises(ValueError, match="return_terms needs the full sum"):
        diffusion.bits_per_dim(
            lambda x, t: x, SCHEDULE, 0 * x0, jax.random.key(0), num_timesteps_sampled=2,
            return_terms=True,
        )
