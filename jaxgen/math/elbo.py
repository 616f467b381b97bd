"""Evidence lower bounds: the ELBO and the importance-weighted bound (IWAE)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxgen import validation


def elbo(log_likelihood: jax.Array, kl: jax.Array, *, beta: float = 1.0) -> jax.Array:
    r"""Evidence lower bound per example.

    .. math::
        \mathrm{ELBO}(x) = \mathbb E_{q(z|x)}[\log p(x|z)] - \beta\,\mathrm{KL}(q(z|x)\,\|\,p(z))
        \le \log p(x)

    For β = 1 the gap to log p(x) is KL(q(z|x) ‖ p(z|x)) (Kingma & Welling 2014,
    arXiv:1312.6114); β ≠ 1 gives the β-VAE objective (Higgins et al. 2017), which is a bound
    only for β ≥ 1.

    Args:
      log_likelihood: a (Monte Carlo) estimate of E_q[log p(x|z)], summed over data
        dimensions, shape ``[B]``.
      kl: KL(q(z|x) ‖ p(z)), summed over latent dimensions, shape ``[B]``.
      beta: β, the weight on the KL term (keyword-only).

    Returns:
      The ELBO in nats, shape ``[B]``.
    """
    validation.check_floating("log_likelihood", log_likelihood)
    validation.check_floating("kl", kl)
    validation.check_same_shape(log_likelihood=log_likelihood, kl=kl)
    return log_likelihood - beta * kl


def iwae_bound(
    log_likelihood: jax.Array, log_prior: jax.Array, log_posterior: jax.Array
) -> jax.Array:
    r"""The k-sample importance-weighted bound (Burda et al. 2015, arXiv:1509.00519).

    .. math::
        \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k
            \frac{p(x|z_i)\,p(z_i)}{q(z_i|x)},\qquad z_i \sim q(z|x)

    ``L_1`` is the ELBO; ``E[L_k]`` increases with k and tends to log p(x), so ``−L_k`` for
    large k (e.g. 5000) is the usual NLL estimate.

    Args:
      log_likelihood: log p(x|z_i), shape ``[K, B]`` (summed over data dimensions).
      log_prior: log p(z_i), shape ``[K, B]`` (summed over latent dimensions).
      log_posterior: log q(z_i|x), shape ``[K, B]``.

    Returns:
      L_k in nats, shape ``[B]``.
    """
    for name, x in (
        ("log_likelihood", log_likelihood), ("log_prior", log_prior),
        ("log_posterior", log_posterior),
    ):
        validation.check_floating(name, x)
    validation.check_same_shape(
        log_likelihood=log_likelihood, log_prior=log_prior, log_posterior=log_posterior
    )
    if jnp.ndim(log_likelihood) < 1:
        raise ValueError("iwae_bound needs a leading sample axis K: shape [K, B].")
    num_samples = jnp.shape(log_likelihood)[0]
    log_weights = log_likelihood + log_prior - log_posterior
    return jax.nn.logsumexp(log_weights, axis=0) - math.log(num_samples)
