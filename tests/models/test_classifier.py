"""Fashion-MNIST feature classifier: shapes, exact parameter count, train/eval behaviour."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import Classifier


def images(batch, seed=0):
    return jax.random.uniform(jax.random.key(seed), (batch, 28, 28, 1))


@pytest.fixture(scope="module")
def model_and_variables():
    model = Classifier()
    return model, model.init(jax.random.key(0), images(2), train=False)


def test_parameter_count_is_exact():
    shapes = jax.eval_shape(lambda: Classifier().init(jax.random.key(0), images(1), train=False))
    count = {k: sum(int(np.prod(s.shape)) for s in jax.tree.leaves(v)) for k, v in shapes.items()}
    convs = 3 * 3 * (1 * 32 + 32 * 32 + 32 * 64 + 64 * 64)  # no biases before BatchNorm
    norms = 2 * (32 + 32 + 64 + 64 + 128)  # scale and offset per channel
    dense = 7 * 7 * 64 * 128 + (128 * 10 + 10)  # flatten → 128 features (no bias) → logits
    assert count["params"] == convs + norms + dense == 468_138
    assert count["batch_stats"] == norms == 640  # running mean and variance


def test_shapes_dtypes_and_features_under_jit(model_and_variables):
    model, variables = model_and_variables
    x = images(3)
    logits = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    logits2, feats = model.apply(variables, x, train=False, return_features=True)
    feats2 = jax.jit(lambda v, x: model.apply(v, x, method=Classifier.features))(variables, x)
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32
    assert feats.shape == feats2.shape == (3, 128) and feats.dtype == jnp.float32
    np.testing.assert_allclose(logits, logits2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats, feats2, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(feats) >= 0)  # after the ReLU
    # Logits are the output layer applied to the features (eval mode: no dropout).
    dense = variables["params"]["Dense_1"]
    np.testing.assert_allclose(logits, feats @ dense["kernel"] + dense["bias"], rtol=1e-5,
                               atol=1e-5)
    small = Classifier(num_classes=4, widths=(8,), feature_dim=16)
    v = small.init(jax.random.key(1), jnp.zeros((2, 16, 16, 1)), train=False)
    out, f = small.apply(v, jnp.zeros((2, 16, 16, 1)), train=False, return_features=True)
    assert out.shape == (2, 4) and f.shape == (2, 16)


def test_eval_mode_is_deterministic_and_per_example(model_and_variables):
    model, variables = model_and_variables
    x = images(4, seed=1)
    a = model.apply(variables, x, train=False)
    b = model.apply(variables, x, train=False)
    np.testing.assert_array_equal(a, b)
    # Running averages, not batch statistics: one example alone gets the same logits.
    np.testing.assert_allclose(model.apply(variables, x[:1], train=False), a[:1], rtol=1e-5,
                               atol=1e-6)


def test_train_mode_uses_dropout_rng_and_updates_batch_stats(model_and_variables):
    model, variables = model_and_variables
    x = images(8, seed=2)

    def train_apply(key):
        return model.apply(variables, x, train=True, mutable=["batch_stats"],
                           rngs={"dropout": key})

    (l1, s1), (l2, _), (l3, _) = train_apply(jax.random.key(3)), train_apply(
        jax.random.key(3)), train_apply(jax.random.key(4))
    np.testing.assert_array_equal(l1, l2)
    assert np.abs(np.asarray(l1 - l3)).max() > 1e-3  # different dropout masks
    old = variables["batch_stats"]["BatchNorm_0"]["mean"]
    assert np.abs(np.asarray(s1["batch_stats"]["BatchNorm_0"]["mean"] - old)).max() > 1e-4
    with pytest.raises(flax.errors.InvalidRngError, match="dropout"):
        model.apply(variables, x, train=True, mutable=["batch_stats"])


def test_bad_inputs_get_clear_errors(model_and_variables):
    model, variables = model_and_variables
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        model.apply(variables, jnp.zeros((2, 28, 28)), train=False)
    with pytest.raises(TypeError, match="floating"):
        model.apply(variables, jnp.zeros((2, 28, 28, 1), jnp.uint8), train=False)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        model.apply(variables, -jnp.ones((2, 28, 28, 1)), train=False)
    with pytest.raises(ValueError, match="divisible by 4"):
        model.apply(variables, jnp.zeros((2, 30, 30, 1)), train=False)
