"""ELBO and IWAE on a linear-Gaussian model whose log p(x) and posterior are exact.

Model: z ~ N(0, I_2), x | z ~ N(W z + b, s² I_3) with W's columns orthogonal, so the exact
posterior p(z|x) is a diagonal Gaussian (a diagonal q can equal it) and
p(x) = N(b, W Wᵀ + s² I) in closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen

W = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
B = np.array([0.5, -1.0, 0.2])
S2 = 0.3
X = np.array([1.7, 0.4, -0.1])


def exact_log_px():
    cov = W @ W.T + S2 * np.eye(3)
    d = X - B
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (3 * np.log(2 * np.pi) + logdet + d @ np.linalg.solve(cov, d))


def exact_posterior():
    prec = np.eye(2) + W.T @ W / S2  # diagonal because W's columns are orthogonal
    cov = np.linalg.inv(prec)
    return cov @ W.T @ (X - B) / S2, np.log(np.diag(cov))


def expected_log_lik(mean, logvar):
    """E_{q}[log p(x|z)] for q = N(mean, diag(exp(logvar))), closed form in float64."""
    r = X - W @ mean - B
    trace = np.sum((W**2) @ np.exp(logvar))
    return -0.5 * (3 * np.log(2 * np.pi * S2) + (r @ r + trace) / S2)


def log_terms(key, mean, logvar, k, reps=1):
    """Sampled log p(x|z), log p(z), log q(z|x): shape [k, reps]."""
    mean32, logvar32 = (jnp.asarray(np.broadcast_to(a, (reps, 2)), jnp.float32)
                        for a in (mean, logvar))
    z = jaxgen.reparameterize(key, mean32, logvar32, num_samples=k)  # [k, reps, 2]
    x_mean = z @ jnp.asarray(W.T, jnp.float32) + jnp.asarray(B, jnp.float32)
    log_lik = jaxgen.gaussian_log_prob(jnp.asarray(X, jnp.float32), x_mean,
                                       jnp.float32(np.log(S2))).sum(-1)
    zero = jnp.float32(0.0)
    log_prior = jaxgen.gaussian_log_prob(z, zero, zero).sum(-1)
    log_post = jaxgen.gaussian_log_prob(z, mean32, logvar32).sum(-1)
    return log_lik, log_prior, log_post


def analytic_elbo(mean, logvar):
    kl = jaxgen.standard_normal_kl(jnp.asarray(mean, jnp.float32),
                                   jnp.asarray(logvar, jnp.float32)).sum()
    ell = jnp.asarray([expected_log_lik(mean, logvar)], jnp.float32)
    return float(jaxgen.elbo(ell, kl[None])[0])


def test_elbo_equals_log_px_when_q_is_exact_posterior():
    mean, logvar = exact_posterior()
    np.testing.assert_allclose(analytic_elbo(mean, logvar), exact_log_px(), rtol=1e-5)
    # Every importance weight equals p(x), so the IWAE bound is exact for any k.
    for k in (1, 7):
        bound = jaxgen.iwae_bound(*log_terms(jax.random.key(k), mean, logvar, k))
        np.testing.assert_allclose(float(bound[0]), exact_log_px(), rtol=1e-5)


def test_elbo_is_a_strict_lower_bound_with_gap_equal_to_posterior_kl():
    mean, logvar = exact_posterior()
    q_mean, q_logvar = mean + np.array([0.4, -0.3]), logvar + np.array([0.7, -0.5])
    gap = exact_log_px() - analytic_elbo(q_mean, q_logvar)
    kl_to_posterior = float(jaxgen.gaussian_kl(
        jnp.asarray(q_mean, jnp.float32), jnp.asarray(q_logvar, jnp.float32),
        jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32)).sum())
    assert gap > 0.05
    np.testing.assert_allclose(gap, kl_to_posterior, rtol=1e-4)


def test_iwae_increases_with_k_and_stays_below_log_px():
    # E[L_k] estimated from 4,000 independent replicates per k; the standard error of each
    # mean is below 0.01 nats here, and consecutive k differ by more than 0.05.
    mean, logvar = exact_posterior()
    q_mean, q_logvar = mean + np.array([0.8, -0.6]), logvar + np.array([1.0, -1.0])
    reps = 4_000
    values = []
    for i, k in enumerate((1, 5, 50)):
        bounds = np.asarray(jaxgen.iwae_bound(*log_terms(jax.random.key(10 + i), q_mean,
                                                         q_logvar, k, reps)))
        values.append((bounds.mean(), bounds.std() / np.sqrt(reps)))
    (l1, se1), (l5, _), (l50, se50) = values
    np.testing.assert_allclose(l1, analytic_elbo(q_mean, q_logvar), atol=5 * se1)
    assert l1 + 0.05 < l5 < l50 < exact_log_px() + 3 * se50
    assert l50 > analytic_elbo(q_mean, q_logvar)


def test_beta_weights_the_kl_term():
    ll = jnp.array([-10.0, -20.0])
    kl = jnp.array([2.0, 3.0])
    np.testing.assert_allclose(jaxgen.elbo(ll, kl, beta=4.0), [-18.0, -32.0])


def test_iwae_bound_checks_shapes():
    with pytest.raises(ValueError, match="same shape"):
        jaxgen.iwae_bound(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="sample axis"):
        jaxgen.iwae_bound(jnp.zeros(()), jnp.zeros(()), jnp.zeros(()))
