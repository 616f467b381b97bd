"""Cycle-consistency and identity losses against hand-computed values, and their checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.math.cycle import cycle_consistency_loss, identity_loss, mean_absolute_error

# Two examples; the photos have 2 pixels, the paintings 3 channels (the domains may differ).
X = np.array([0.0, 1.0, -1.0, 0.5], np.float32).reshape(2, 1, 2, 1)
X_HAT = np.array([0.5, 1.0, -1.0, -0.5], np.float32).reshape(2, 1, 2, 1)
Y = np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0], np.float32).reshape(2, 1, 1, 3)
Y_HAT = np.array([0.4, 0.2, 0.0, 0.3, -0.3, 0.6], np.float32).reshape(2, 1, 1, 3)
# |X_HAT − X| = [0.5, 0], [0, 1] → means 0.25, 0.5
# |Y_HAT − Y| = [0.3, 0, 0.3], [0.3, 0.3, 0.6] → means 0.2, 0.4
X_ERROR, Y_ERROR = np.array([0.25, 0.5]), np.array([0.2, 0.4])


def test_mean_absolute_error_is_per_example_l1loss():
    np.testing.assert_allclose(mean_absolute_error(X_HAT, X), X_ERROR, rtol=1e-6)
    # Averaged over the batch it is torch.nn.L1Loss (mean over every element).
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4, 5, 2)), rng.normal(size=(3, 4, 5, 2))
    np.testing.assert_allclose(float(mean_absolute_error(jnp.asarray(a, jnp.float32),
                                                         jnp.asarray(b, jnp.float32)).mean()),
                               np.abs(a - b).mean(), rtol=1e-5)


def test_cycle_loss_hand_computed_and_under_jit():
    want = X_ERROR + Y_ERROR  # [0.45, 0.9]
    np.testing.assert_allclose(cycle_consistency_loss(X, X_HAT, Y, Y_HAT), want, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(cycle_consistency_loss)(X, X_HAT, Y, Y_HAT), want,
                               rtol=1e-6)
    assert cycle_consistency_loss(X, X, Y, Y).shape == (2,)
    assert not np.any(np.asarray(cycle_consistency_loss(X, X, Y, Y)))


def test_identity_loss_hand_computed_pairs_each_image_with_its_own_generator():
    # f_of_x stands for F(x) (photo generator on a photo), g_of_y for G(y).
    np.testing.assert_allclose(identity_loss(X, X_HAT, Y, Y_HAT), X_ERROR + Y_ERROR, rtol=1e-6)
    # Only F(x)'s error: G leaves the painting unchanged.
    np.testing.assert_allclose(identity_loss(X, X_HAT, Y, Y), X_ERROR, rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        identity_loss(X, Y_HAT, Y, X_HAT)  # outputs swapped between the domains


def test_cycle_gradient_is_sign_over_pixel_count():
    # d/dx̂ mean|x̂ − x| = sign(x̂ − x)/N per example, N = 2 pixels here (away from ties,
    # where JAX's |·| takes the subgradient +1 and PyTorch's 0).
    x_hat = X + np.array([0.5, 0.1, -0.1, -1.0], np.float32).reshape(X.shape)
    grad = jax.grad(lambda x_hat: cycle_consistency_loss(X, x_hat, Y, Y).sum())(x_hat)
    np.testing.assert_allclose(grad.ravel(), [0.5, 0.5, -0.5, -0.5])


def test_shape_batch_and_dtype_errors():
    with pytest.raises(ValueError, match="x: .*x_cycled"):
        cycle_consistency_loss(X, X_HAT[:, :, :1], Y, Y_HAT)
    with pytest.raises(ValueError, match="same batch size"):
        cycle_consistency_loss(X, X_HAT, Y[:1], Y_HAT[:1])
    with pytest.raises(ValueError, match="batch axis"):
        identity_loss(X[0, 0, 0], X_HAT[0, 0, 0], Y[0, 0, 0, :1], Y_HAT[0, 0, 0, :1])
    with pytest.raises(TypeError, match="floating-point"):
        cycle_consistency_loss(X.astype(np.int32), X_HAT, Y, Y_HAT)
