"""DCGAN modules: reference parameter counts, shapes, initialisation, BatchNorm over devices."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxgen.models.dcgan import Discriminator, Generator

# The small models of the jitted tests: narrow, with 2 examples per fake CPU device.
LATENT, FEATURES, BATCH = 16, 8, 8


def count(tree) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


def kernel_shapes(params) -> list[tuple[int, ...]]:
    convs = sorted(k for k in params if "Conv" in k)
    return [tuple(params[k]["kernel"].shape) for k in convs]


def test_reference_parameter_counts_at_64x64():
    # PyTorch DCGAN example, nz = 100, ngf = ndf = 64, nc = 3 (BatchNorm weight + bias count,
    # running statistics do not). Shapes only: nothing is compiled.
    gen, disc = Generator(latent_dim=100, features=64, channels=3, image_size=64), Discriminator()
    g_vars = jax.eval_shape(lambda k: gen.init(k, jnp.zeros((1, 100)), train=False),
                            jax.random.key(0))
    d_vars = jax.eval_shape(lambda k: disc.init(k, jnp.zeros((1, 64, 64, 3)), train=False),
                            jax.random.key(0))
    assert count(g_vars["params"]) == 3_576_704
    assert count(d_vars["params"]) == 2_765_568
    # Running mean and variance of the BatchNorms over 512+256+128+64 and 128+256+512 channels.
    assert count(g_vars["batch_stats"]) == 2 * 960
    assert count(d_vars["batch_stats"]) == 2 * 896
    # HWIO kernels, no biases anywhere (BatchNorm's β replaces them).
    assert kernel_shapes(g_vars["params"]) == [
        (4, 4, 100, 512), (4, 4, 512, 256), (4, 4, 256, 128), (4, 4, 128, 64), (4, 4, 64, 3)]
    assert kernel_shapes(d_vars["params"]) == [
        (4, 4, 3, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 512), (4, 4, 512, 1)]
    for params in (g_vars["params"], d_vars["params"]):
        assert all(set(params[k]) == {"kernel"} for k in params if "Conv" in k)


def test_32x32_drops_the_widest_stage():
    gen = Generator(latent_dim=100, features=64, channels=1, image_size=32)
    disc = Discriminator(features=64, image_size=32)
    g_vars = jax.eval_shape(lambda k: gen.init(k, jnp.zeros((1, 100)), train=False),
                            jax.random.key(0))
    d_vars = jax.eval_shape(lambda k: disc.init(k, jnp.zeros((1, 32, 32, 1)), train=False),
                            jax.random.key(0))
    assert kernel_shapes(g_vars["params"]) == [
        (4, 4, 100, 256), (4, 4, 256, 128), (4, 4, 128, 64), (4, 4, 64, 1)]
    assert kernel_shapes(d_vars["params"]) == [
        (4, 4, 1, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 1)]


def normal(seed: int, shape) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


SIZES = pytest.mark.parametrize("image_size, channels", [(32, 1), (64, 3)])


@functools.cache
def small_models(image_size: int, channels: int) -> dict:
    """A narrow generator and discriminator and their variables, initialised once.

    The key is an "rbg" key only to keep the test fast: on a CPU, compiling threefry for the
    ~20 parameter draws takes several seconds; the initialisers themselves are unchanged.
    """
    gen = Generator(latent_dim=LATENT, features=FEATURES, channels=channels,
                    image_size=image_size)
    disc = Discriminator(features=FEATURES, image_size=image_size)

    @jax.jit
    def init(key):
        key_g, key_d = jax.random.split(key)
        return (gen.init(key_g, jnp.zeros((1, LATENT)), train=False),
                disc.init(key_d, jnp.zeros((1, image_size, image_size, channels)), train=False))

    g_vars, d_vars = init(jax.random.key(0, impl="rbg"))
    return dict(gen=gen, disc=disc, g_vars=g_vars, d_vars=d_vars)


@SIZES
def test_shapes_ranges_and_batch_stats_under_jit(image_size, channels):
    small = small_models(image_size, channels)
    gen, disc, g_vars, d_vars = small["gen"], small["disc"], small["g_vars"], small["d_vars"]
    z = 3.0 * normal(1, (BATCH, LATENT))

    @jax.jit
    def forward(g_vars, d_vars, z):
        images, g_updates = gen.apply(g_vars, z, train=True, mutable=["batch_stats"])
        logits, d_updates = disc.apply(d_vars, images, train=True, mutable=["batch_stats"])
        eval_logits = disc.apply(d_vars, gen.apply(g_vars, z, train=False), train=False)
        return images, logits, eval_logits, g_updates["batch_stats"], d_updates["batch_stats"]

    images, logits, eval_logits, g_stats, d_stats = forward(g_vars, d_vars, z)
    assert images.shape == (BATCH, image_size, image_size, channels) and images.dtype == jnp.float32
    assert float(jnp.min(images)) >= -1.0 and float(jnp.max(images)) <= 1.0
    assert float(jnp.max(jnp.abs(images))) > 0.1  # tanh of something, not all zeros
    assert logits.shape == eval_logits.shape == (BATCH,) and logits.dtype == jnp.float32
    # Training mode returns new running statistics, moved away from their initial (0, 1);
    # evaluation mode reads the running averages and needs nothing mutable.
    assert jax.tree.structure(g_stats) == jax.tree.structure(g_vars["batch_stats"])
    assert jax.tree.structure(d_stats) == jax.tree.structure(d_vars["batch_stats"])
    assert not np.allclose(g_stats["BatchNorm_0"]["mean"], 0.0)
    assert not np.allclose(d_stats["BatchNorm_0"]["var"], 1.0)


def test_initialisation_follows_the_dcgan_reference():
    small = small_models(64, 3)
    # N(0, 0.02²) conv weights, BatchNorm γ ~ N(1, 0.02²), β = 0 (pooled over both models).
    # Tolerances are > 5 standard errors of the sample mean / std for the pooled counts.
    params = [small["g_vars"]["params"], small["d_vars"]["params"]]
    kernels = np.concatenate([np.ravel(p[k]["kernel"]) for p in params for k in p
                              if "Conv" in k])
    scales = np.concatenate([np.ravel(p[k]["scale"]) for p in params for k in p
                             if "BatchNorm" in k])
    biases = np.concatenate([np.ravel(p[k]["bias"]) for p in params for k in p
                             if "BatchNorm" in k])
    assert kernels.size > 20_000 and scales.size > 100
    se = 0.02 / np.sqrt(kernels.size)
    assert abs(kernels.mean()) < 5 * se and abs(kernels.std() - 0.02) < 5 * se
    se = 0.02 / np.sqrt(scales.size)
    assert abs(scales.mean() - 1.0) < 5 * se and abs(scales.std() - 0.02) < 5 * se
    np.testing.assert_array_equal(biases, 0.0)


def _global_and_mapped(mode, model, variables, inputs):
    """Training-mode outputs and new batch_stats: unmapped on the whole batch (a copy of the
    model with axis_name None), and split over all devices along axis "data"."""

    def body(model, variables, x):
        out, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, updates["batch_stats"]

    reference = jax.jit(functools.partial(body, model.clone(axis_name=None)))(variables, inputs)
    mapped_body = functools.partial(body, model)
    if mode == "shard_map":
        mesh = Mesh(np.asarray(jax.devices()), ("data",))
        mapped = jax.jit(jax.shard_map(mapped_body, mesh=mesh, in_specs=(P(), P("data")),
                                       out_specs=(P("data"), P())))
        return reference, mapped(variables, inputs)
    shards = inputs.reshape((jax.device_count(), -1, *inputs.shape[1:]))
    out, stats = jax.pmap(mapped_body, axis_name="data", in_axes=(None, 0))(variables, shards)
    for s in jax.tree.leaves(stats):  # every device holds the same (global) statistics
        np.testing.assert_allclose(s, np.broadcast_to(s[0], s.shape), rtol=1e-6)
    return reference, (out.reshape((-1, *out.shape[2:])), jax.tree.map(lambda s: s[0], stats))


@pytest.mark.parametrize("mode", ["shard_map", "pmap"])
def test_batch_norm_over_devices_matches_one_device_on_the_global_batch(mode, num_devices):
    small = small_models(32, 1)
    assert BATCH % num_devices == 0
    gen, disc = small["gen"].clone(axis_name="data"), small["disc"].clone(axis_name="data")
    z = normal(2, (BATCH, LATENT))  # 2 examples per device
    (images, g_stats), (images_m, g_stats_m) = _global_and_mapped(mode, gen, small["g_vars"], z)
    np.testing.assert_allclose(images_m, images, rtol=1e-4, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 g_stats_m, g_stats)
    (logits, d_stats), (logits_m, d_stats_m) = _global_and_mapped(mode, disc, small["d_vars"],
                                                                  images)
    np.testing.assert_allclose(logits_m, logits, rtol=1e-4, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 d_stats_m, d_stats)


def test_without_axis_name_each_device_uses_its_own_statistics(num_devices):
    small = small_models(32, 1)
    # The control for the test above: per-device batch statistics give different images.
    gen, variables = small["gen"], small["g_vars"]
    z = normal(2, (BATCH, LATENT))
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    per_device = jax.jit(jax.shard_map(
        lambda v, z: gen.apply(v, z, train=True, mutable=["batch_stats"])[0],
        mesh=mesh, in_specs=(P(), P("data")), out_specs=P("data")))(variables, z)
    global_batch = jax.jit(
        lambda v, z: gen.apply(v, z, train=True, mutable=["batch_stats"])[0])(variables, z)
    assert np.max(np.abs(np.asarray(per_device) - np.asarray(global_batch))) > 1e-2


def test_bad_configurations_and_inputs_get_clear_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="power of two"):
        Generator(image_size=28).init(key, jnp.zeros((1, 100)), train=False)
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(image_size=48).init(key, jnp.zeros((1, 48, 48, 3)), train=False)
    gen = Generator(latent_dim=16, features=8, channels=1, image_size=32)
    with pytest.raises(ValueError, match=r"\[B, 16\]"):
        gen.init(key, jnp.zeros((2, 100)), train=False)
    with pytest.raises(ValueError, match=r"\[B, 16\]"):
        gen.init(key, jnp.zeros((2, 4, 4)), train=False)
    with pytest.raises(TypeError, match="floating point"):
        gen.init(key, jnp.zeros((2, 16), jnp.int32), train=False)
    disc = Discriminator(features=8, image_size=32)
    with pytest.raises(ValueError, match=r"\[B, 32, 32, C\]"):
        disc.init(key, jnp.zeros((2, 28, 28, 1)), train=False)
    with pytest.raises(ValueError, match=r"\[B, 32, 32, C\]"):
        disc.init(key, jnp.zeros((32, 32, 1)), train=False)
    with pytest.raises(TypeError, match="floating point"):
        disc.init(key, jnp.zeros((2, 32, 32, 1), jnp.uint8), train=False)
    with pytest.raises(TypeError, match="positional"):
        gen.init(key, jnp.zeros((2, 16)), False)  # train is keyword-only
