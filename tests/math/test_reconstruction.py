"""Reconstruction losses against float64 NumPy and their input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgen


def test_bce_matches_float64_formula_including_extreme_logits():
    logits = np.array([-100.0, -5.0, -0.3, 0.0, 0.7, 5.0, 100.0], np.float32)
    targets = np.array([0.0, 0.2, 1.0, 0.5, 0.0, 1.0, 0.3], np.float32)
    lg = logits.astype(np.float64)
    # −x log σ(ℓ) − (1−x) log(1−σ(ℓ)) = softplus(ℓ) − x ℓ, evaluated stably.
    want = np.logaddexp(0.0, lg) - targets * lg
    got = np.asarray(jaxgen.binary_cross_entropy(logits, targets))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    g = jax.grad(lambda lo: jaxgen.binary_cross_entropy(lo, jnp.asarray(targets)).sum())(
        jnp.asarray(logits))
    assert np.all(np.isfinite(np.asarray(g)))


def test_bce_rejects_targets_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\].*squared_error"):
        jaxgen.binary_cross_entropy(jnp.zeros(3), jnp.array([0.0, 1.5, 0.2]))


def test_squared_error_matches_numpy():
    p = np.array([[0.1, 0.9], [2.0, -1.0]], np.float32)
    t = np.array([[0.0, 1.0], [1.0, 1.0]], np.float32)
    np.testing.assert_allclose(np.asarray(jaxgen.squared_error(p, t)), (p - t) ** 2, rtol=1e-6)


def test_shape_and_dtype_errors():
    with pytest.raises(ValueError, match="same shape"):
        jaxgen.squared_error(jnp.zeros((2, 3)), jnp.zeros((3, 2)))
    with pytest.raises(TypeError, match="floating-point"):
        jaxgen.binary_cross_entropy(jnp.zeros(3), jnp.zeros(3, jnp.uint8))
