"""Adversarial losses vs float64 references, their limits, and the GAN theory they implement."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.math import adversarial as adv

# Logits covering both signs, zero and a large value; paired element by element.
REAL = np.array([0.0, 2.0, -1.0, 5.0, -3.5], np.float32)
FAKE = np.array([0.0, -1.0, 3.0, -4.0, 0.25], np.float32)


def normal(seed, shape):
    """Standard-normal test data (NumPy's generator: no PRNG compilation in eager tests)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def softplus64(x):
    """softplus(x) = log(1 + eˣ) in float64."""
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def sigmoid64(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def references64(r, f):
    """Every loss written from its formula with D = σ(logit) (or the raw output), float64."""
    r, f = np.asarray(r, np.float64), np.asarray(f, np.float64)
    return {
        "minimax_d": -np.log(sigmoid64(r)) - np.log(1.0 - sigmoid64(f)),
        "minimax_g": np.log(1.0 - sigmoid64(f)),
        "non_saturating_g": -np.log(sigmoid64(f)),
        "least_squares_d": 0.5 * ((r - 1.0) ** 2 + f**2),
        "least_squares_g": (f - 1.0) ** 2,
        "hinge_d": np.maximum(0.0, 1.0 - r) + np.maximum(0.0, 1.0 + f),
        "hinge_g": -f,
    }


def all_losses(r, f):
    return {
        "minimax_d": adv.minimax_discriminator_loss(r, f),
        "minimax_g": adv.minimax_generator_loss(f),
        "non_saturating_g": adv.non_saturating_generator_loss(f),
        "least_squares_d": adv.least_squares_discriminator_loss(r, f),
        "least_squares_g": adv.least_squares_generator_loss(f),
        "hinge_d": adv.hinge_discriminator_loss(r, f),
        "hinge_g": adv.hinge_generator_loss(f),
    }


def test_losses_match_float64_formulas():
    want = references64(REAL, FAKE)
    for name, got in all_losses(jnp.asarray(REAL), jnp.asarray(FAKE)).items():
        assert got.shape == (5,) and got.dtype == jnp.float32, name
        np.testing.assert_allclose(np.asarray(got), want[name], rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_losses_by_hand_at_zero_logits():
    z = jnp.zeros((1,), jnp.float32)
    # D = σ(0) = ½ on both sides: −log ½ − log ½ = log 4.
    np.testing.assert_allclose(adv.minimax_discriminator_loss(z, z), [math.log(4.0)], rtol=1e-7)
    np.testing.assert_allclose(adv.minimax_generator_loss(z), [-math.log(2.0)], rtol=1e-7)
    np.testing.assert_allclose(adv.non_saturating_generator_loss(z), [math.log(2.0)], rtol=1e-7)
    # ½[(0 − 1)² + 0²] = ½ and (0 − 1)² = 1; hinge: max(0, 1) + max(0, 1) = 2.
    np.testing.assert_array_equal(adv.least_squares_discriminator_loss(z, z), [0.5])
    np.testing.assert_array_equal(adv.least_squares_generator_loss(z), [1.0])
    np.testing.assert_array_equal(adv.hinge_discriminator_loss(z, z), [2.0])
    np.testing.assert_array_equal(adv.hinge_generator_loss(z), [0.0])
    # Hinge is zero once the margins are met: r = 1.5 ≥ 1 and f = −2 ≤ −1.
    np.testing.assert_array_equal(
        adv.hinge_discriminator_loss(jnp.array([1.5]), jnp.array([-2.0])), [0.0])


def test_patch_logits_are_averaged_to_one_value_per_example():
    r, f = 3.0 * normal(0, (3, 4, 4, 1)), 3.0 * normal(1, (3, 4, 4, 1))
    want = references64(r, f)
    for name, got in all_losses(r, f).items():
        assert got.shape == (3,), name
        np.testing.assert_allclose(np.asarray(got), want[name].mean(axis=(1, 2, 3)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)


def test_extreme_logits_give_finite_values_limits_and_gradients():
    big = jnp.array([100.0, -100.0], jnp.float32)
    # softplus(100) = 100 to float32 precision; softplus(−100) = e^−100 ≈ 0.
    d = adv.minimax_discriminator_loss(big, big)  # softplus(−r) + softplus(f)
    np.testing.assert_allclose(d, [100.0, 100.0], rtol=1e-7)
    np.testing.assert_allclose(adv.minimax_discriminator_loss(big, -big), [0.0, 200.0], atol=1e-30)
    np.testing.assert_allclose(adv.non_saturating_generator_loss(big), [0.0, 100.0], atol=1e-30)
    np.testing.assert_allclose(adv.minimax_generator_loss(big), [-100.0, 0.0], atol=1e-30)
    for name, fn in [
        ("minimax_d", lambda r, f: adv.minimax_discriminator_loss(r, f)),
        ("minimax_g", lambda r, f: adv.minimax_generator_loss(f)),
        ("non_saturating_g", lambda r, f: adv.non_saturating_generator_loss(f)),
        ("least_squares_d", lambda r, f: adv.least_squares_discriminator_loss(r, f)),
        ("least_squares_g", lambda r, f: adv.least_squares_generator_loss(f)),
        ("hinge_d", lambda r, f: adv.hinge_discriminator_loss(r, f)),
        ("hinge_g", lambda r, f: adv.hinge_generator_loss(f)),
    ]:
        for r, f in [(big, big), (big, -big)]:
            value = fn(r, f)
            grads = jax.grad(lambda r, f, fn=fn: fn(r, f).sum(), argnums=(0, 1))(r, f)
            assert np.all(np.isfinite(value)), name
            assert all(np.all(np.isfinite(g)) for g in grads), name
    # The gradients have the right limits: d softplus(−f)/df = −σ(−f) → −1 when D rejects the
    # fakes (f = −100): the non-saturating loss still pushes; the saturating one, −σ(f), is 0.
    g_ns = jax.grad(lambda f: adv.non_saturating_generator_loss(f).sum())(big)
    g_mm = jax.grad(lambda f: adv.minimax_generator_loss(f).sum())(big)
    np.testing.assert_allclose(g_ns, [0.0, -1.0], atol=1e-30)
    np.testing.assert_allclose(g_mm, [-1.0, 0.0], atol=1e-30)


def test_losses_work_under_jit_and_keep_bfloat16():
    r = jnp.asarray(REAL, jnp.bfloat16)
    out = jax.jit(adv.minimax_discriminator_loss)(r, r)
    assert out.dtype == jnp.bfloat16 and out.shape == (5,)


def test_registry_pairs_and_unknown_kind():
    assert adv.GAN_LOSS_KINDS == ("minimax", "non_saturating", "least_squares", "hinge")
    assert adv.get_gan_losses("minimax") == (adv.minimax_discriminator_loss,
                                             adv.minimax_generator_loss)
    d_loss, g_loss = adv.get_gan_losses("non_saturating")
    assert d_loss is adv.minimax_discriminator_loss
    assert g_loss is adv.non_saturating_generator_loss
    assert adv.get_gan_losses("least_squares").generator is adv.least_squares_generator_loss
    assert adv.get_gan_losses("hinge").discriminator is adv.hinge_discriminator_loss
    with pytest.raises(ValueError, match="minimax, non_saturating, least_squares, hinge"):
        adv.get_gan_losses("wasserstein")


def test_bad_inputs_get_clear_errors():
    with pytest.raises(TypeError, match="real_logits must be a floating-point array"):
        adv.minimax_discriminator_loss(jnp.zeros((2,), jnp.int32), jnp.zeros((2,)))
    with pytest.raises(TypeError, match="fake_logits"):
        adv.non_saturating_generator_loss(jnp.zeros((2,), jnp.int32))
    with pytest.raises(ValueError, match=r"real_logits: \(4,\), fake_logits: \(3,\)"):
        adv.hinge_discriminator_loss(jnp.zeros((4,)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match="same shape"):
        adv.least_squares_discriminator_loss(jnp.zeros((4, 1)), jnp.zeros((4,)))
    with pytest.raises(ValueError, match="leading batch axis"):
        adv.least_squares_generator_loss(jnp.float32(0.0))
    with pytest.raises(ValueError, match="one logit"):
        adv.r1_penalty(lambda x: jnp.sum(x), jnp.ones((2, 3)))


def test_r1_penalty_closed_forms_and_double_backprop():
    x, w = normal(2, (3, 4, 4, 2)), normal(3, (4, 4, 2))
    # Linear D(x) = <w, x> + 7: ∇ₓD = w, so R1 = ‖w‖² for every example.
    linear = adv.r1_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 7.0, x)
    np.testing.assert_allclose(linear, np.full(3, np.sum(np.square(np.asarray(w)))), rtol=1e-5)
    # Quadratic patch map D(x)[b, h, w, c] = x²: ∇ₓ Σ D = 2x, so R1 = 4 Σ x² per example.
    patch = adv.r1_penalty(lambda x: jnp.square(x), x)
    np.testing.assert_allclose(patch, 4.0 * np.sum(np.square(np.asarray(x)), axis=(1, 2, 3)),
                               rtol=1e-5)
    # Through the parameters: d/dw mean_b ‖w‖² = 2w.
    grad_w = jax.grad(
        lambda w: adv.r1_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)), x).mean())(w)
    np.testing.assert_allclose(grad_w, 2.0 * np.asarray(w), rtol=1e-5)


# --- GAN theory on a 1-D toy -----------------------------------------------------------------


def quadratic_logit(params, x):
    """D(x) = σ(a x² + b x + c): represents log p_data/p_g exactly for two Gaussians."""
    a, b, c = params
    return a * x**2 + b * x + c


@functools.partial(jax.jit, static_argnames=("steps", "batch"))
def train_discriminator(mean_g, std_g, key, *, steps, batch):
    """Fit the quadratic D to p_data = N(0, 1) vs fixed p_g = N(mean_g, std_g²), minimax loss."""
    tx = optax.adam(optax.cosine_decay_schedule(0.05, steps))

    def loss(params, key):
        key_real, key_fake = jax.random.split(key)
        real = jax.random.normal(key_real, (batch,))
        fake = mean_g + std_g * jax.random.normal(key_fake, (batch,))
        return adv.minimax_discriminator_loss(
            quadratic_logit(params, real), quadratic_logit(params, fake)).mean()

    def step(carry, key):
        params, opt_state = carry
        updates, opt_state = tx.update(jax.grad(loss)(params, key), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    params = jnp.zeros(3)
    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, steps))
    return params


def optimal_logit64(x, mean_g, std_g):
    """log p_data(x) − log p_g(x) for p_data = N(0, 1), p_g = N(mean_g, std_g²), float64."""
    x = np.asarray(x, np.float64)
    return -0.5 * x**2 + 0.5 * ((x - mean_g) / std_g) ** 2 + np.log(std_g)


@pytest.mark.parametrize("mean_g, std_g", [(1.0, 1.0), (1.0, 1.5), (0.0, 1.0)])
def test_trained_discriminator_approaches_the_optimal_one(mean_g, std_g):
    # 2,000 Adam steps (lr 0.05, cosine decay) on fresh batches of 1,024 + 1,024 samples.
    # The trained D(x) must match D*(x) = p_data / (p_data + p_g) within 0.02 everywhere on
    # [−2, 3] (observed: < 0.005).
    params = train_discriminator(mean_g, std_g, jax.random.key(0), steps=2000, batch=1024)
    grid = np.linspace(-2.0, 3.0, 101)
    d_trained = sigmoid64(np.asarray(quadratic_logit(params, jnp.asarray(grid, jnp.float32))))
    d_star = sigmoid64(optimal_logit64(grid, mean_g, std_g))
    assert np.max(np.abs(d_trained - d_star)) < 0.02, params
    if mean_g == 0.0 and std_g == 1.0:
        # p_g = p_data: D* = ½ and V(D, G) = −E[L_D] = −log 4, by Monte Carlo over 200,000
        # pairs with the trained D (tolerance 0.01 covers D's ≤ 0.02 error and MC noise).
        real, fake = normal(7, (200_000,)), normal(8, (200_000,))
        value = -float(adv.minimax_discriminator_loss(quadratic_logit(params, real),
                                                      quadratic_logit(params, fake)).mean())
        assert abs(value - (-math.log(4.0))) < 0.01, value


def test_minimax_value_at_the_optimal_discriminator_is_minus_log4_plus_2jsd():
    # V(D*, G) = −log 4 + 2 JSD(p_data ‖ p_g) (Goodfellow et al. 2014, Theorem 1). JSD by
    # float64 quadrature; V by Monte Carlo with N = 400,000 pairs and the exact D* logit,
    # within 5 standard errors. At p_g = p_data it is exactly −log 4.
    mean_g, std_g = 1.0, 1.0
    grid = np.linspace(-12.0, 13.0, 250_001)
    p = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    q = np.exp(-0.5 * ((grid - mean_g) / std_g) ** 2) / (std_g * np.sqrt(2 * np.pi))
    m = 0.5 * (p + q)
    jsd = 0.5 * np.trapezoid(p * np.log(p / m) + q * np.log(q / m), grid)
    n = 400_000
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal(n), mean_g + std_g * rng.standard_normal(n)
    losses = np.asarray(adv.minimax_discriminator_loss(
        jnp.asarray(optimal_logit64(real, mean_g, std_g), jnp.float32),
        jnp.asarray(optimal_logit64(fake, mean_g, std_g), jnp.float32)), np.float64)
    value, stderr = -losses.mean(), losses.std() / np.sqrt(n)
    assert abs(value - (-math.log(4.0) + 2.0 * jsd)) < 5 * stderr, (value, jsd, stderr)
    assert value > -math.log(4.0) + 0.1  # strictly above the minimum when p_g ≠ p_data
    zero = jnp.zeros((n,), jnp.float32)  # D* = ½ when p_g = p_data
    np.testing.assert_allclose(-adv.minimax_discriminator_loss(zero, zero).mean(),
                               -math.log(4.0), rtol=1e-6)


class MLPDiscriminator(nn.Module):
    """1-D input → tanh MLP → one logit per example."""

    width: int = 32

    @nn.compact
    def __call__(self, x):
        h = x[:, None]
        h = nn.tanh(nn.Dense(self.width)(h))
        h = nn.tanh(nn.Dense(self.width)(h))
        return nn.Dense(1)(h)[:, 0]


def test_tiny_gan_with_non_saturating_loss_matches_the_data_distribution():
    # Data N(3, 0.5²); G(z) = a z + b with z ~ N(0, 1), so p_g = N(b, a²) exactly. D: a tanh
    # MLP. 1,000 alternating Adam steps (lr 5e-3, β₁ = 0.5), batches of 256, seed 0.
    # Tolerance: mean within 0.1 and std within 0.05 of the target (observed errors < 0.01
    # over seeds 0-2).
    steps, batch, data_mean, data_std = 1000, 256, 3.0, 0.5
    disc = MLPDiscriminator()
    key = jax.random.key(0)
    d_params = disc.init(key, jnp.zeros((1,)))
    g_params = jnp.array([1.0, 0.0])  # (a, b): starts as N(0, 1)
    tx_d, tx_g = optax.adam(5e-3, b1=0.5), optax.adam(5e-3, b1=0.5)
    d_loss_fn, g_loss_fn = adv.get_gan_losses("non_saturating")

    def d_loss(d_params, g_params, key):
        key_real, key_z = jax.random.split(key)
        real = data_mean + data_std * jax.random.normal(key_real, (batch,))
        fake = g_params[0] * jax.random.normal(key_z, (batch,)) + g_params[1]
        return d_loss_fn(disc.apply(d_params, real), disc.apply(d_params, fake)).mean()

    def g_loss(g_params, d_params, key):
        fake = g_params[0] * jax.random.normal(key, (batch,)) + g_params[1]
        return g_loss_fn(disc.apply(d_params, fake)).mean()

    def step(carry, key):
        d_params, g_params, d_opt, g_opt = carry
        key_d, key_g = jax.random.split(key)
        updates, d_opt = tx_d.update(jax.grad(d_loss)(d_params, g_params, key_d), d_opt)
        d_params = optax.apply_updates(d_params, updates)
        updates, g_opt = tx_g.update(jax.grad(g_loss)(g_params, d_params, key_g), g_opt)
        return (d_params, optax.apply_updates(g_params, updates), d_opt, g_opt), None

    carry = (d_params, g_params, tx_d.init(d_params), tx_g.init(g_params))
    keys = jax.random.split(jax.random.fold_in(key, 1), steps)
    (_, g_params, _, _), _ = jax.jit(lambda c, k: jax.lax.scan(step, c, k))(carry, keys)
    a, b = (float(v) for v in g_params)
    assert abs(b - data_mean) < 0.1, (a, b)
    assert abs(abs(a) - data_std) < 0.05, (a, b)
