"""DDPM and DDIM samplers with the exact optimal predictor for Gaussian data; determinism;
per-example keys."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxgen.math import diffusion
from jaxgen.training.keys import per_example_keys
from tests.math.diffusion import reference

SCHEDULE = diffusion.make_schedule("linear")
SMALL = diffusion.make_schedule("linear", num_timesteps=50)
TAB = reference.tables(reference.linear_betas(1000))
# Two independent data dimensions, x₀ ~ N(m, s²) per dimension.
M = np.array([0.3, -0.5])
S = np.array([0.5, 0.8])
N = 20_000  # samples per sampler run


def optimal_eps_fn(schedule):
    """The best noise predictor for this file's data N(M, S²)."""
    return reference.optimal_eps_fn(schedule, M, S)


def x_start(seed=0, n=N):
    return jax.random.normal(jax.random.key(seed), (n, 2))


def check_moments(samples, exact_moments, data_rel_var_tol):
    """Sample moments vs (a) the exact float64 moments of the sampler, within 5 standard errors,
    and (b) the data: mean within 0.02, variance within `data_rel_var_tol` relative."""
    samples = np.asarray(samples, np.float64)
    assert np.all(np.isfinite(samples))
    for d in range(2):
        exact_mean, exact_var = exact_moments[d]
        mean, var = samples[:, d].mean(), samples[:, d].var()
        assert abs(mean - exact_mean) < 5 * np.sqrt(exact_var / len(samples)), (d, mean, exact_mean)
        assert abs(var - exact_var) < 5 * exact_var * np.sqrt(2 / len(samples)), (d, var, exact_var)
        assert abs(mean - M[d]) < 0.02, (d, mean, M[d])
        assert abs(var / S[d] ** 2 - 1) < data_rel_var_tol, (d, var, S[d] ** 2)


@pytest.mark.parametrize("variance", ["small", "large"])
def test_ddpm_with_optimal_predictor_reproduces_gaussian_data(variance):
    # Exact (float64) output variance of this sampler: small 0.985 s² / 0.990 s², large
    # 1.003 s² / 1.001 s² for the two dimensions. Standard errors at N = 20,000: 1% of the
    # variance, ≤ 0.006 on the mean. Data check: variance within 5%.
    samples = diffusion.ddpm_sample(
        optimal_eps_fn(SCHEDULE), SCHEDULE, x_start(), jax.random.key(1),
        variance=variance, clip_x0=False,
    )
    exact = [reference.ddpm_output_moments(TAB, M[d], S[d], variance) for d in range(2)]
    check_moments(samples, exact, data_rel_var_tol=0.05)


@pytest.mark.parametrize(
    ("num_steps", "eta", "data_rel_var_tol"),
    [
        # 50 steps: the exact variance of the discretized chain is 0.891 s² / 0.920 s² (η = 0)
        # and 0.786 s² / 0.837 s² (η = 1). That gap is the sampler's discretization error, not
        # a bug: each DDIM step keeps only cos²(Δθ) of the variance, θ = atan(σ/(a s)), so S
        # steps lose at least (π/2)²/S ≈ 5% at S = 50.
        (50, 0.0, 0.14),
        (50, 1.0, 0.25),
        # All 1000 steps: 0.994 s² / 0.996 s² (η = 0), the ODE limit.
        (1000, 0.0, 0.03),
    ],
)
def test_ddim_with_optimal_predictor_matches_exact_moments_and_data(
    num_steps, eta, data_rel_var_tol
):
    samples = diffusion.ddim_sample(
        optimal_eps_fn(SCHEDULE), SCHEDULE, x_start(), jax.random.key(2),
        num_steps=num_steps, eta=eta, clip_x0=False,
    )
    timesteps = diffusion.ddim_timesteps(1000, num_steps=num_steps)
    exact = [reference.ddim_output_moments(TAB, timesteps, M[d], S[d], eta) for d in range(2)]
    check_moments(samples, exact, data_rel_var_tol=data_rel_var_tol)


def test_ddim_eta_zero_is_deterministic_and_ddpm_is_not():
    schedule = diffusion.make_schedule("cosine", num_timesteps=100)
    eps_fn = optimal_eps_fn(schedule)
    x_T = x_start(n=4)
    # Jitted once each and called with several keys (one compilation per sampler).
    ddim = jax.jit(functools.partial(diffusion.ddim_sample, eps_fn, schedule, num_steps=20))
    ddim_noisy = jax.jit(
        functools.partial(diffusion.ddim_sample, eps_fn, schedule, num_steps=20, eta=0.5)
    )
    ddpm = jax.jit(functools.partial(diffusion.ddpm_sample, eps_fn, schedule))
    key0, key1 = jax.random.key(0), jax.random.key(1)
    np.testing.assert_array_equal(ddim(x_T, key0), ddim(x_T, key1))
    assert not np.allclose(ddim(x_T, key0), ddim(2 * x_T, key0))
    assert not np.allclose(ddim_noisy(x_T, key0), ddim_noisy(x_T, key1))
    a, b = np.asarray(ddpm(x_T, key0)), np.asarray(ddpm(x_T, key1))
    assert np.min(np.abs(a - b)) > 1e-4
    np.testing.assert_array_equal(a, ddpm(x_T, key0))


def test_ddim_eta_one_on_all_steps_is_ddpm_with_small_variance():
    # Song et al. 2021, Sec. 4.1: η = 1 over all T steps is ancestral DDPM with σ² = β̃. Both
    # samplers draw step t's noise from fold_in(key, t), so the chains coincide up to rounding.
    # With clipping on (the identity holds for any x̂₀ consistent with x_t): this ε_θ sends
    # x̂₀ outside [−1, 1] at large t and keeps it inside at small t.
    schedule = diffusion.make_schedule("linear", num_timesteps=100)
    eps_fn = lambda x, t: 0.9 * x + 0.1 * (t[:, None, None] % 7).astype(x.dtype)  # noqa: E731
    x_T = 1.5 * jax.random.normal(jax.random.key(3), (3, 4, 2))
    key = jax.random.key(4)
    ddpm = diffusion.ddpm_sample(eps_fn, schedule, x_T, key, clip_x0=True)
    ddim = diffusion.ddim_sample(eps_fn, schedule, x_T, key, eta=1.0, clip_x0=True)
    np.testing.assert_allclose(ddim, ddpm, atol=1e-4)
    # The last step returns the clipped x̂₀.
    assert float(jnp.max(jnp.abs(ddpm))) <= 1.0


def test_ddim_under_jit_matches_eager():
    # (DDPM runs under jit in the determinism test.)
    schedule = diffusion.make_schedule("linear", num_timesteps=50)
    eps_fn = optimal_eps_fn(schedule)
    x_T, key = x_start(n=3), jax.random.key(5)
    ddim = jax.jit(functools.partial(diffusion.ddim_sample, eps_fn, num_steps=10, eta=0.3))
    np.testing.assert_allclose(
        ddim(schedule, x_T, key),
        diffusion.ddim_sample(eps_fn, schedule, x_T, key, num_steps=10, eta=0.3),
        rtol=1e-5, atol=1e-6,
    )


def test_ddim_timesteps():
    ts = diffusion.ddim_timesteps(1000, num_steps=50)
    assert ts.shape == (50,) and ts[0] == 0 and ts[-1] == 999 and np.all(np.diff(ts) > 0)
    np.testing.assert_array_equal(diffusion.ddim_timesteps(10), np.arange(10))
    np.testing.assert_array_equal(diffusion.ddim_timesteps(10, num_steps=10), np.arange(10))
    np.testing.assert_array_equal(diffusion.ddim_timesteps(10, num_steps=1), [9])
    np.testing.assert_array_equal(diffusion.ddim_timesteps(10, timesteps=[2, 5, 9]), [2, 5, 9])


def test_clear_errors_for_invalid_timesteps_and_options():
    eps_fn = optimal_eps_fn(SCHEDULE)
    x_T, key = x_start(n=2), jax.random.key(0)
    ddim = functools.partial(diffusion.ddim_sample, eps_fn, SCHEDULE, x_T, key)
    with pytest.raises(ValueError, match="strictly increasing"):
        ddim(timesteps=[0, 500, 400])
    with pytest.raises(ValueError, match="strictly increasing"):
        ddim(timesteps=[0, 10, 10])
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        ddim(timesteps=[0, 1000])
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        ddim(timesteps=[-1, 10])
    with pytest.raises(ValueError, match="non-empty"):
        ddim(timesteps=[])
    with pytest.raises(TypeError, match="integers"):
        ddim(timesteps=[0.0, 10.0])
    with pytest.raises(ValueError, match="not both"):
        ddim(num_steps=10, timesteps=[0, 10])
    with pytest.raises(ValueError, match="num_steps must be between 1 and T = 1000"):
        ddim(num_steps=1001)
    with pytest.raises(ValueError, match="eta"):
        ddim(num_steps=10, eta=-0.1)
    with pytest.raises(ValueError, match="unknown variance"):
        diffusion.ddpm_sample(eps_fn, SCHEDULE, x_T, key, variance="learned")
    with pytest.raises(ValueError, match="eps_fn must return noise shaped like x"):
        diffusion.ddim_sample(lambda x, t: x[:, :1], SCHEDULE, x_T, key, num_steps=5)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int64", "uint8", "uint16", "uint32"])
def test_ddim_timesteps_of_any_integer_dtype(dtype):
    np.testing.assert_array_equal(
        diffusion.ddim_timesteps(200, timesteps=np.array([2, 5, 9], dtype)), [2, 5, 9])
    # Unsigned differences wrap: [5, 3] must still be seen as decreasing.
    with pytest.raises(ValueError, match="strictly increasing"):
        diffusion.ddim_timesteps(200, timesteps=np.array([5, 3], dtype))


PER_EXAMPLE_SAMPLERS = {
    "ddpm": functools.partial(diffusion.ddpm_sample, clip_x0=False),
    "ddim_eta_0.7": functools.partial(diffusion.ddim_sample, num_steps=10, eta=0.7, clip_x0=False),
}


@pytest.mark.parametrize("name", list(PER_EXAMPLE_SAMPLERS))
def test_per_example_keys_make_samples_independent_of_how_the_batch_is_split(name, num_devices):
    sampler = functools.partial(PER_EXAMPLE_SAMPLERS[name], optimal_eps_fn(SMALL), SMALL)
    x_T, key = x_start(seed=6, n=8), jax.random.key(7)

    def body(x_T, key):  # one device's shard: keys folded from the examples' global indices
        return sampler(x_T, per_example_keys(key, x_T.shape[0]))

    def on_devices(n):
        mesh = Mesh(np.asarray(jax.devices()[:n]), ("data",))
        return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P("data"), P()),
                                     out_specs=P("data")))(x_T, key)

    whole, halves, quarters = on_devices(1), on_devices(2), on_devices(4)
    np.testing.assert_allclose(halves, whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(quarters, whole, rtol=1e-6, atol=1e-6)
    # The same keys passed directly: the two halves sampled separately give the batch's samples.
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(8))
    together = sampler(x_T, keys)
    np.testing.assert_allclose(together, whole, rtol=1e-6, atol=1e-6)
    apart = np.concatenate([sampler(x_T[:4], keys[:4]), sampler(x_T[4:], keys[4:])])
    np.testing.assert_allclose(apart, together, rtol=1e-6, atol=1e-6)
    # Raw uint32 keys [B, 2] work alike.
    raw = jax.random.key_data(keys)
    np.testing.assert_allclose(sampler(x_T, raw), together, rtol=1e-6, atol=1e-6)
    # The noise is per example: the same x_T row with different keys ends differently, and a
    # single key for the whole batch (the old behaviour, kept) depends on the split.
    same_start = sampler(jnp.broadcast_to(x_T[:1], x_T.shape), keys)
    assert np.min(np.abs(np.diff(np.asarray(same_start), axis=0))) > 1e-4
    single = sampler(x_T, key)
    assert not np.allclose(np.concatenate([sampler(x_T[:4], key), sampler(x_T[4:], key)]), single)


def test_single_key_noise_is_unchanged():
    # A single key still draws step t's noise for the whole batch from fold_in(key, t): one
    # DDPM step from t = 1 (T = 2) is mean + σ₁ · normal(fold_in(key, 1), x.shape).
    schedule = diffusion.make_schedule("linear", num_timesteps=2)
    eps_fn = lambda x, t: jnp.zeros_like(x)  # noqa: E731
    x_T, key = x_start(n=3), jax.random.key(8)
    out = diffusion.ddpm_sample(eps_fn, schedule, x_T, key, clip_x0=False)
    # t = 1: x̂₀ = x/√ᾱ₁, mean = μ̃₁; then t = 0 returns the mean μ_θ(x₁, 0) = x₁/√α₀.
    ab = np.asarray(schedule.alphas_cumprod, np.float64)
    c1, c2 = (np.asarray(getattr(schedule, f"posterior_mean_coef{i}"))[1] for i in (1, 2))
    noise = jax.random.normal(jax.random.fold_in(key, 1), x_T.shape)
    x1 = (c1 / np.sqrt(ab[1]) + c2) * x_T + np.sqrt(schedule.posterior_variance[1]) * noise
    np.testing.assert_allclose(out, x1 / np.sqrt(1.0 - schedule.betas[0]), rtol=1e-5, atol=1e-6)


def test_wrong_number_of_keys_is_a_clear_error():
    x_T = x_start(n=4)
    keys = jax.random.split(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="got 3 keys for a batch of 4"):
        diffusion.ddpm_sample(optimal_eps_fn(SMALL), SMALL, x_T, keys)
    with pytest.raises(ValueError, match="got 3 keys for a batch of 4"):
        diffusion.ddim_sample(optimal_eps_fn(SMALL), SMALL, x_T, keys, num_steps=5, eta=0.5)
    with pytest.raises(ValueError, match="one key per example, shape \\[B\\]"):
        diffusion.ddpm_sample(optimal_eps_fn(SMALL), SMALL, x_T,
                              jax.random.split(jax.random.key(0), (4, 2)))
