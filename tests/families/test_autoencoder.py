"""The autoencoder family's pure losses, against independent NumPy computations."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.families.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    AutoencoderLoss,
    AutoencoderModel,
    vae_terms,
)


def test_vae_terms_match_a_float64_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 4, 1))
    x = rng.uniform(size=(3, 4, 4, 1))
    mean, logvar = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    t = vae_terms(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32),
                  jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32), beta=2.0)
    # Bernoulli log-likelihood from logits and the closed-form KL to N(0, I).
    log_lik = (x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits)).sum((1, 2, 3))
    kl = 0.5 * (np.exp(logvar) + mean**2 - 1 - logvar).sum(-1)
    np.testing.assert_allclose(t.reconstruction, -log_lik, rtol=1e-5)
    np.testing.assert_allclose(t.kl, kl, rtol=1e-5)
    np.testing.assert_allclose(t.neg_elbo, -log_lik + kl, rtol=1e-5)
    np.testing.assert_allclose(t.loss, -log_lik + 2.0 * kl, rtol=1e-5)


def test_denoising_target_is_the_clean_image():
    """With every pixel masked the network sees zeros, and the loss compares its output with
    the clean image, not with the zeros it was given."""
    family = Autoencoder(AutoencoderConfig(
        model=AutoencoderModel(variational=False, latent_dim=2, hidden=(8,)),
        loss=AutoencoderLoss(reconstruction="mse", corruption="mask", corruption_level=1.0)),
        image_shape=(4, 4, 1))
    state = family.init(jax.random.key(0), tx=__import__("optax").sgd(0.1))
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 4, 4, 1)), jnp.float32)
    terms = jax.vmap(family.terms, in_axes=(None, None, None), axis_name="data",
                     axis_size=1)(state.params, x, jax.random.key(2))
    out = np.asarray(family.model.apply({"params": state.params}, jnp.zeros_like(x)))
    clean = ((out - np.asarray(x)) ** 2).sum((1, 2, 3))
    np.testing.assert_allclose(terms["loss"][0], clean, rtol=1e-5)
    assert not np.allclose(clean, (out**2).sum((1, 2, 3)))  # vs the corrupted input: differs
