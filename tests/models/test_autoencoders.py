"""Autoencoder and VAE modules: shapes, parameter counts, the encode API, input checks, and the
conditional (one-hot label) variants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models.autoencoders import VAE, Autoencoder, ConvEncoder, make_autoencoder

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


# ---- Class conditioning: the conditional VAE (and autoencoder) -----------------------------

K = 4  # classes of the conditional models


def _tree_shapes(tree):
    return jax.tree.map(lambda leaf: (leaf.shape, leaf.dtype), tree)


def _build(architecture, variational, num_classes=None, **kw):
    extra = {} if num_classes is None else {"num_classes": num_classes}
    return make_autoencoder(architecture=architecture, image_shape=SHAPE, latent_dim=5,
                            variational=variational, hidden=(32,), channels=(4, 8), **kw,
                            **extra)


def _init_shapes(model, variational, *y):
    args = (jnp.zeros((3, *SHAPE)),) + ((jax.random.key(1),) if variational else ()) + y
    return _tree_shapes(jax.eval_shape(model.init, jax.random.key(0), *args))


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("variational", [False, True])
def test_num_classes_0_is_todays_parameter_tree(architecture, variational):
    old = _init_shapes(_build(architecture, variational), variational)
    assert _init_shapes(_build(architecture, variational, 0), variational) == old
    # Conditional: the same tree, only the first layer of the encoder and of the decoder
    # sees K more inputs (the one-hot label).
    new = _init_shapes(_build(architecture, variational, K), variational,
                       jnp.zeros((3,), jnp.int32))
    first = "Conv_0" if architecture == "conv" else "Dense_0"
    for part, layer, axis in [("encoder", first, -2), ("decoder", "Dense_0", 0)]:
        (shape, dtype) = old["params"][part][layer]["kernel"]
        wider = list(shape)
        wider[axis] += K
        assert new["params"][part][layer]["kernel"] == (tuple(wider), dtype)
        new["params"][part][layer]["kernel"] = old["params"][part][layer]["kernel"]
    assert new == old


def test_conditional_classic_vae_parameter_count():
    # 784+10 → 400 → 2·20 and 20+10 → 400 → 784: 10·400 more weights in each first layer.
    model = make_autoencoder(architecture="mlp", image_shape=SHAPE, latent_dim=20,
                             variational=True, hidden=(400,), num_classes=10)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *SHAPE)),
                            jax.random.key(1), jnp.zeros((1,), jnp.int32))
    count = sum(np.prod(s.shape) for s in jax.tree.leaves(shapes))
    assert count == 652_824 + 2 * 10 * 400 == 660_824


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("variational", [False, True])
def test_conditional_shapes_and_labels_matter_under_jit(architecture, variational):
    model = _build(architecture, variational, K)
    x = jnp.linspace(0, 1, 3 * 28 * 28, dtype=jnp.float32).reshape((3, *SHAPE))
    key = jax.random.key(0)
    y = jnp.array([0, 1, 3], jnp.int32)
    args = (x, key) if variational else (x,)
    params = jax.jit(model.init)(key, *args, y)
    cls = VAE if variational else Autoencoder
    apply = jax.jit(model.apply, static_argnames="method")
    out = apply(params, *args, y)
    out = out[0] if variational else out
    assert out.shape == (3, *SHAPE) and out.dtype == jnp.float32
    # Same x, other labels: other codes; same z, other labels: other decoder outputs.
    other = (y + 1) % K
    enc = lambda y: np.asarray(jax.tree.leaves(apply(params, x, y, method=cls.encode))[0])
    assert np.all(np.abs(enc(y) - enc(other)).max(axis=1) > 1e-4)
    z = jnp.asarray(np.random.default_rng(0).standard_normal((3, 5)), jnp.float32)
    dec = lambda y: np.asarray(apply(params, z, y, method=cls.decode))
    assert dec(y).shape == (3, *SHAPE)
    assert np.all(np.abs(dec(y) - dec(other)).reshape(3, -1).max(axis=1) > 1e-4)


def test_labels_enter_as_one_hot():
    # The MLP decoder's first layer sees [z, one_hot(y)]: by hand in NumPy.
    model = _build("mlp", True, K)
    key = jax.random.key(0)
    params = model.init(key, jnp.zeros((3, *SHAPE)), key, jnp.zeros((3,), jnp.int32))
    dec = {k: {n: np.asarray(a, np.float64) for n, a in v.items()}
           for k, v in params["params"]["decoder"].items()}
    z = np.random.default_rng(1).standard_normal((3, 5))
    y = np.array([2, 0, 3])
    h = np.concatenate([z, np.eye(K)[y]], axis=1)
    h = np.maximum(h @ dec["Dense_0"]["kernel"] + dec["Dense_0"]["bias"], 0)
    want = (h @ dec["Dense_1"]["kernel"] + dec["Dense_1"]["bias"]).reshape((3, *SHAPE))
    got = model.apply(params, jnp.asarray(z, jnp.float32), jnp.asarray(y), method=VAE.decode)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The conv encoder sees the one-hot as K constant channels after the image's.
    conv = _build("conv", True, K)
    variables = conv.init(key, jnp.zeros((3, *SHAPE)), key, jnp.zeros((3,), jnp.int32))
    x = jnp.asarray(np.random.default_rng(2).random((3, *SHAPE)), jnp.float32)
    _, state = conv.apply(variables, x, jnp.asarray(y), method=VAE.encode,
                          capture_intermediates=True, mutable=["intermediates"])
    plain = ConvEncoder(channels=(4, 8), features=10)  # the same layers, labels as channels
    planes = np.broadcast_to(np.eye(K)[y][:, None, None, :], (3, 28, 28, K))
    want = plain.apply({"params": variables["params"]["encoder"]},
                       jnp.concatenate([x, jnp.asarray(planes, jnp.float32)], axis=-1))
    np.testing.assert_allclose(state["intermediates"]["encoder"]["__call__"][0], want,
                               rtol=1e-5, atol=1e-6)


def test_decode_broadcasts_labels_over_sample_axes():
    model = _build("mlp", True, K)
    key = jax.random.key(0)
    params = model.init(key, jnp.zeros((3, *SHAPE)), key, jnp.zeros((3,), jnp.int32))
    z = jnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 5)), jnp.float32)
    y = jnp.array([1, 2, 3], jnp.int32)
    many = model.apply(params, z, y, method=VAE.decode)  # [K, B, D] with y [B]
    assert many.shape == (2, 3, *SHAPE)
    for k in range(2):
        np.testing.assert_allclose(many[k], model.apply(params, z[k], y, method=VAE.decode),
                                   rtol=1e-6)


def test_missing_extra_and_bad_labels_get_clear_errors():
    key = jax.random.key(0)
    x, y = jnp.zeros((3, *SHAPE)), jnp.zeros((3,), jnp.int32)
    cond, plain = _build("mlp", True, K), _build("mlp", True)
    params = cond.init(key, x, key, y)
    with pytest.raises(ValueError, match=r"VAE is class-conditional \(num_classes=4\)"):
        cond.apply(params, x, key)
    with pytest.raises(ValueError, match=r"VAE is class-conditional"):
        cond.apply(params, jnp.zeros((3, 5)), method=VAE.decode)
    with pytest.raises(ValueError, match=r"VAE is unconditional \(num_classes=0\)"):
        plain.init(key, x, key, y)
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        cond.apply(params, x, key, jnp.zeros((2,), jnp.int32))
    with pytest.raises(TypeError, match="must be integers"):
        cond.apply(params, x, key, jnp.zeros((3,), jnp.float32))
    with pytest.raises(ValueError, match=r"in \[0, 3\]"):
        cond.apply(params, x, key, jnp.array([0, 1, K]))
    ae = _build("conv", False, K)
    with pytest.raises(ValueError, match=r"Autoencoder is class-conditional"):
        ae.init(key, x)
    # Encoder and decoder must be built for the model's classes.
    with pytest.raises(ValueError, match="encoder was built with num_classes=0"):
        VAE(encoder=plain.encoder, decoder=cond.decoder, latent_dim=5, image_shape=SHAPE,
            num_classes=K).init(key, x, key, y)
    with pytest.raises(ValueError, match="num_classes must be an int >= 0"):
        _build("mlp", True, -1)
