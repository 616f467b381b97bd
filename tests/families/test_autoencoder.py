"""The autoencoder family: its pure losses against independent NumPy computations, and the
AE / VAE variant that ``model.variational`` selects."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import families
from jaxgen.families.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    AutoencoderEval,
    AutoencoderLoss,
    AutoencoderModel,
    DeterministicAutoencoder,
    VariationalAutoencoder,
    vae_terms,
)
from jaxgen.validation import ConfigError


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
    state = family.init(jax.random.key(0), tx=optax.sgd(0.1))
    x = jnp.asarray(np.random.default_rng(1).uniform(size=(2, 4, 4, 1)), jnp.float32)
    terms = jax.vmap(family.terms, in_axes=(None, None, None), axis_name="data",
                     axis_size=1)(state.params, x, jax.random.key(2))
    out = np.asarray(family.model.apply({"params": state.params}, jnp.zeros_like(x)))
    clean = ((out - np.asarray(x)) ** 2).sum((1, 2, 3))
    np.testing.assert_allclose(terms["loss"][0], clean, rtol=1e-5)
    assert not np.allclose(clean, (out**2).sum((1, 2, 3)))  # vs the corrupted input: differs


def tiny_config(variational: bool) -> AutoencoderConfig:
    return AutoencoderConfig(model=AutoencoderModel(variational=variational, latent_dim=2,
                                                    hidden=(8,)),
                             eval=AutoencoderEval(iwae_samples=3))


def per_device(body):
    """`body(state, batch, key)` on one device of the ``"data"`` axis."""
    return jax.vmap(body, in_axes=(None, None, None), axis_name="data", axis_size=1)


@pytest.mark.parametrize("variational, variant", [(False, DeterministicAutoencoder),
                                                   (True, VariationalAutoencoder)])
def test_the_registry_entry_builds_the_variant_the_config_selects(variational, variant):
    cls = families.get("autoencoder")
    assert cls is Autoencoder
    # What settings and the runner read from the registered class, before building one.
    assert (cls.name, cls.Config, cls.data_kind, cls.input_range) == (
        "autoencoder", AutoencoderConfig, "images", "unit")
    family = cls(tiny_config(variational), image_shape=(4, 4, 1))
    assert type(family) is variant and isinstance(family, Autoencoder)
    assert family.name == "autoencoder" and family.variational == variational
    assert family.samplers == variant.samplers == (("prior",) if variational else ())
    # A variant built directly from its own config is the same family.
    assert type(variant(tiny_config(variational), image_shape=(4, 4, 1))) is variant


def test_a_variant_refuses_the_other_variants_config_and_a_foreign_config():
    with pytest.raises(ConfigError, match="model.variational=True, got False"):
        VariationalAutoencoder(tiny_config(False), image_shape=(4, 4, 1))
    with pytest.raises(ConfigError, match="model.variational=False, got True"):
        DeterministicAutoencoder(tiny_config(True), image_shape=(4, 4, 1))
    with pytest.raises(TypeError, match="takes a AutoencoderConfig, got dict"):
        Autoencoder({}, image_shape=(4, 4, 1))


@pytest.mark.parametrize("variational", [False, True])
def test_each_variant_returns_what_it_declares(variational):
    """The eval passes return the names they list, the codes have one row per example, and
    only the VAE generates."""
    family = Autoencoder(tiny_config(variational), image_shape=(4, 4, 1))
    state = family.init(jax.random.key(0), optax.sgd(0.1))
    batch = {"image": jnp.asarray(np.random.default_rng(1).uniform(size=(3, 4, 4, 1)),
                                  jnp.float32)}
    for name, p in family.eval_passes().items():
        values = per_device(p.body)(state, batch, jax.random.key(2))
        assert sorted(values) == sorted(p.metrics), name
    assert sorted(family.eval_passes()) == (["iwae", "test"] if variational else ["test"])
    codes = per_device(family.encode_body)(state, batch, jax.random.key(3))
    assert {k: v.shape for k, v in codes.items()} == (
        {"mean": (1, 3, 2), "logvar": (1, 3, 2)} if variational else {"z": (1, 3, 2)})
    grid = per_device(family.previews()["reconstructions"].body)(state, batch,
                                                                 jax.random.key(4))
    assert grid.shape == (1, 3, 2, 4, 4, 1)
    if variational:
        inputs = family.sample_inputs(jax.random.key(5), 3)
        images = per_device(family.sample_body("prior"))(state, inputs, jax.random.key(6))
        assert images.shape == (1, 3, 4, 4, 1)
    else:
        with pytest.raises(NotImplementedError, match="does not generate"):
            family.sample_body("prior")
