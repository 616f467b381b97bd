"""Autoencoder and VAE modules: shapes, parameter counts, the encode API, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models.autoencoders import VAE, Autoencoder, make_autoencoder

SHAPE = (28, 28, 1)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("variational", [False, True])
def test_shapes_under_jit(architecture, variational):
    model = make_autoencoder(architecture=architecture, image_shape=SHAPE, latent_dim=5,
                             variational=variational, hidden=(32,), channels=(4, 8))
    x = jnp.linspace(0, 1, 3 * 28 * 28, dtype=jnp.float32).reshape((3, *SHAPE))
    key = jax.random.key(0)
    args = (x, key) if variational else (x,)
    params = model.init(key, *args)["params"]
    out = jax.jit(model.apply)({"params": params}, *args)
    if variational:
        out, mean, logvar = out
        assert mean.shape == logvar.shape == (3, 5)
        z = jax.jit(lambda p, x: model.apply(p, x, method=VAE.encode))({"params": params}, x)
        assert z[0].shape == (3, 5)
        # decode accepts extra leading axes (IWAE samples): [K, B, D] -> [K, B, H, W, C]
        many = model.apply({"params": params}, jnp.zeros((4, 3, 5)), method=VAE.decode)
        assert many.shape == (4, 3, *SHAPE)
    else:
        z = model.apply({"params": params}, x, method=Autoencoder.encode)
        assert z.shape == (3, 5)
    assert out.shape == (3, *SHAPE) and out.dtype == jnp.float32


def test_classic_vae_parameter_count():
    # 784-400-20 (mean and log-variance heads) and 20-400-784, with biases.
    model = make_autoencoder(architecture="mlp", image_shape=SHAPE, latent_dim=20,
                             variational=True, hidden=(400,))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *SHAPE)),
                            jax.random.key(1))
    count = sum(np.prod(s.shape) for s in jax.tree.leaves(shapes))
    want = (784 * 400 + 400) + (400 * 40 + 40) + (20 * 400 + 400) + (400 * 784 + 784)
    assert count == want == 652_824


def test_bad_inputs_get_clear_errors():
    model = make_autoencoder(architecture="mlp", image_shape=SHAPE, latent_dim=2,
                             variational=False, hidden=(8,))
    params = model.init(jax.random.key(0), jnp.zeros((1, *SHAPE)))
    with pytest.raises(ValueError, match=r"\[B, 28, 28, 1\]"):
        model.apply(params, jnp.zeros((2, 28, 28)))
    with pytest.raises(TypeError, match="floating point"):
        model.apply(params, jnp.zeros((2, *SHAPE), jnp.uint8))
    with pytest.raises(ValueError, match="architecture"):
        make_autoencoder(architecture="rnn", image_shape=SHAPE, latent_dim=2, variational=False)
    conv = make_autoencoder(architecture="conv", image_shape=(30, 30, 1), latent_dim=2,
                            variational=False, channels=(4, 8))
    with pytest.raises(ValueError, match="divisible by 4"):
        conv.init(jax.random.key(0), jnp.zeros((1, 30, 30, 1)))


def test_torch_init_matches_pytorch_linear_default():
    """PyTorch's nn.Linear: kernel and bias uniform on ±1/√fan_in (so std = 1/√(3·fan_in))."""
    model = make_autoencoder(architecture="mlp", image_shape=(28, 28, 1), latent_dim=20,
                             variational=True, hidden=(400,), init="torch")
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))
    dense = params["params"]["encoder"]["Dense_0"]
    bound = 1.0 / np.sqrt(784)
    kernel, bias = np.asarray(dense["kernel"]), np.asarray(dense["bias"])
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
    # 313,600 kernel draws: the std of a uniform on ±b is b/√3; 1% tolerance is > 10 s.e.
    np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3), rtol=0.01)
    assert np.abs(bias).min() > 0 and bias.std() > 0.5 * bound / np.sqrt(3)
    with pytest.raises(ValueError, match="unknown init"):
        make_autoencoder(architecture="mlp", image_shape=(28, 28, 1), latent_dim=2,
                         variational=False, init="xavier")
