"""DCGAN modules: reference parameter counts, shapes, initialisation, BatchNorm over devices,
conditional BatchNorm and the projection discriminator."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxgen.models.dcgan import ConditionalBatchNorm, Discriminator, Generator

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


# ---- Class conditioning: conditional BatchNorm (G) and the projection discriminator (D) ----

K = 5  # classes of the conditional models


def _tree_shapes(tree):
    return jax.tree.map(lambda leaf: (leaf.shape, leaf.dtype), tree)


def _init_shapes(model, x, **kw):
    return _tree_shapes(jax.eval_shape(lambda k: model.init(k, x, train=False, **kw),
                                       jax.random.key(0)))


def labels(n: int = BATCH) -> jax.Array:
    return jnp.arange(n, dtype=jnp.int32) % K


def test_num_classes_0_is_todays_parameter_tree():
    z, x = jnp.zeros((1, 100)), jnp.zeros((1, 64, 64, 3))
    for old, new, inputs in [(Generator(), Generator(num_classes=0), z),
                             (Discriminator(), Discriminator(num_classes=0), x)]:
        assert _init_shapes(new, inputs) == _init_shapes(old, inputs)
    # The conditional generator swaps every BatchNorm_i (scale, bias: [C]) for a
    # ConditionalBatchNorm_i (scale, bias: [K, C]) with the same running statistics; the
    # conditional discriminator adds one [K, ndf·8] table.
    g_old, d_old = _init_shapes(Generator(), z), _init_shapes(Discriminator(), x)
    y = jnp.zeros((1,), jnp.int32)
    g_new = _init_shapes(Generator(num_classes=K), z, y=y)
    d_new = _init_shapes(Discriminator(num_classes=K), x, y=y)
    rename = lambda tree: {k.replace("ConditionalBatchNorm", "BatchNorm"): v
                           for k, v in tree.items()}
    assert rename(g_new["batch_stats"]) == g_old["batch_stats"]
    for name, leaves in rename(g_new["params"]).items():
        old = g_old["params"][name]
        if "BatchNorm" in name:
            assert leaves == {k: ((K, *s), d) for k, (s, d) in old.items()}
        else:
            assert leaves == old
    assert set(rename(g_new["params"])) == set(g_old["params"])
    assert d_new["params"].pop("class_embed") == {"embedding": ((K, 512), jnp.float32)}
    assert d_new == d_old
    g_count = sum(np.prod(s) for s, _ in jax.tree.leaves(
        g_new["params"], is_leaf=lambda v: isinstance(v, tuple) and len(v) == 2))
    assert g_count == 3_576_704 - 2 * 960 + K * 2 * 960


@functools.cache
def conditional_models(image_size: int = 32, channels: int = 1) -> dict:
    """Narrow conditional G and D, their fresh variables, and the unconditional pair."""
    gen = Generator(latent_dim=LATENT, features=FEATURES, channels=channels,
                    image_size=image_size, num_classes=K)
    disc = Discriminator(features=FEATURES, image_size=image_size, num_classes=K)
    y = jnp.zeros((1,), jnp.int32)

    @jax.jit
    def init(key):
        key_g, key_d = jax.random.split(key)
        return (gen.init(key_g, jnp.zeros((1, LATENT)), y=y, train=False),
                disc.init(key_d, jnp.zeros((1, image_size, image_size, channels)), y=y,
                          train=False))

    g_vars, d_vars = init(jax.random.key(0, impl="rbg"))
    return dict(gen=gen, disc=disc, g_vars=g_vars, d_vars=d_vars,
                plain_gen=gen.clone(num_classes=0), plain_disc=disc.clone(num_classes=0))


def _normalise(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """BatchNorm without affine in NumPy: per channel, over batch and space, biased var."""
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    return (x - mean) / np.sqrt(var + eps)


def test_fresh_conditional_batch_norm_is_plain_normalisation():
    x = np.asarray(3.0 + 2.0 * normal(3, (BATCH, 4, 4, 6)), np.float64)
    y = labels()
    cbn = ConditionalBatchNorm(num_classes=K, use_running_average=False)
    variables = cbn.init(jax.random.key(0), jnp.asarray(x, jnp.float32), y)
    assert variables["params"]["scale"].shape == variables["params"]["bias"].shape == (K, 6)
    np.testing.assert_array_equal(variables["params"]["scale"], 1.0)
    np.testing.assert_array_equal(variables["params"]["bias"], 0.0)
    out, updates = jax.jit(lambda v, x, y: cbn.apply(v, x, y, mutable=["batch_stats"]))(
        variables, jnp.asarray(x, jnp.float32), y)
    np.testing.assert_allclose(out, _normalise(x), rtol=1e-4, atol=1e-4)
    # Running statistics move as the DCGAN BatchNorm's do (momentum 0.9 on the old average).
    axes = (0, 1, 2)
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * x.mean(axis=axes),
                               rtol=1e-5)
    np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * x.var(axis=axes),
                               rtol=1e-5)
    # Evaluation mode uses the running averages (fresh: mean 0, var 1).
    evaluate = cbn.clone(use_running_average=True)
    np.testing.assert_allclose(evaluate.apply(variables, jnp.asarray(x, jnp.float32), y),
                               x / np.sqrt(1 + 1e-5), rtol=1e-5)
    # With trained tables, example b gets γ[y_b] · x̂ + β[y_b].
    rng = np.random.default_rng(4)
    scale, bias = rng.standard_normal((K, 6)), rng.standard_normal((K, 6))
    tables = {"params": {"scale": jnp.asarray(scale, jnp.float32),
                         "bias": jnp.asarray(bias, jnp.float32)},
              "batch_stats": variables["batch_stats"]}
    out = cbn.apply(tables, jnp.asarray(x, jnp.float32), y, mutable=["batch_stats"])[0]
    yy = np.asarray(y)
    want = _normalise(x) * scale[yy][:, None, None, :] + bias[yy][:, None, None, :]
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_fresh_conditional_generator_is_the_generator_without_affine():
    small = conditional_models()
    gen, plain, g_vars = small["gen"], small["plain_gen"], small["g_vars"]
    # The same kernels in the unconditional generator, every BatchNorm with γ = 1 and β = 0:
    # identical images and running statistics, whatever the labels.
    params = {}
    for name, p in g_vars["params"].items():
        if name.startswith("ConditionalBatchNorm"):
            params[name.replace("Conditional", "")] = {
                "scale": jnp.ones(p["scale"].shape[1:]), "bias": jnp.zeros(p["bias"].shape[1:])}
        else:
            params[name] = p
    stats = {k.replace("Conditional", ""): v for k, v in g_vars["batch_stats"].items()}
    z = normal(5, (BATCH, LATENT))
    run = jax.jit(lambda m, v, z, y: m.apply(v, z, y=y, train=True, mutable=["batch_stats"]),
                  static_argnums=0)
    images, updates = run(gen, g_vars, z, labels())
    want, want_updates = run(plain, {"params": params, "batch_stats": stats}, z, None)
    np.testing.assert_allclose(images, want, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 {k.replace("Conditional", ""): v for k, v in updates["batch_stats"].items()},
                 want_updates["batch_stats"])


def test_labels_change_the_outputs_under_jit():
    small = conditional_models()
    gen, disc, g_vars, d_vars = small["gen"], small["disc"], small["g_vars"], small["d_vars"]
    # Fresh CBN tables are all 1 and 0 (the label has no effect yet): perturb them.
    rng = np.random.default_rng(6)
    g_params = {name: ({k: v + 0.3 * rng.standard_normal(v.shape).astype(np.float32)
                        for k, v in p.items()} if name.startswith("Conditional") else p)
                for name, p in g_vars["params"].items()}
    g_vars = {**g_vars, "params": g_params}
    z = normal(7, (BATCH, LATENT))

    @jax.jit
    def forward(y):
        images, g_stats = gen.apply(g_vars, z, y=y, train=True, mutable=["batch_stats"])
        logits = disc.apply(d_vars, images, y=y, train=False)
        same_images = disc.apply(d_vars, gen.apply(g_vars, z, y=labels(), train=False), y=y,
                                 train=False)
        return images, logits, same_images, g_stats["batch_stats"]

    images_a, logits_a, same_a, stats = forward(labels())
    images_b, logits_b, same_b, _ = forward((labels() + 1) % K)
    assert images_a.shape == (BATCH, 32, 32, 1) and logits_a.shape == (BATCH,)
    assert logits_a.dtype == jnp.float32 and np.all(np.isfinite(logits_a))
    assert jax.tree.structure(stats) == jax.tree.structure(g_vars["batch_stats"])
    # The same z with other labels gives other images; the same images with other labels
    # other logits.
    assert np.all(np.abs(np.asarray(images_a - images_b)).reshape(BATCH, -1).max(1) > 1e-3)
    assert np.all(np.abs(np.asarray(same_a - same_b)) > 1e-7)


def test_projection_term_is_embedding_dot_pooled_features():
    small = conditional_models()
    disc, plain, d_vars = small["disc"], small["plain_disc"], small["d_vars"]
    x = jnp.tanh(normal(8, (BATCH, 32, 32, 1)))
    y = labels()
    for train in (False, True):
        mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
        logits, state = jax.jit(lambda v, x, y, train=train, mutable=mutable: disc.apply(
            v, x, y=y, train=train, capture_intermediates=True, mutable=mutable))(d_vars, x, y)
        inter = state["intermediates"]
        # φ(x) by hand: the last BatchNorm's output, LeakyReLU(0.2), summed over H and W.
        h = np.asarray(inter["BatchNorm_1"]["__call__"][0], np.float64)
        assert h.shape == (BATCH, 4, 4, 4 * FEATURES)
        phi = np.where(h > 0, h, 0.2 * h).sum(axis=(1, 2))
        np.testing.assert_allclose(inter["features"][0], phi, rtol=1e-5, atol=1e-5)
        embedding = np.asarray(d_vars["params"]["class_embed"]["embedding"], np.float64)
        projection = np.sum(embedding[np.asarray(y)] * phi, axis=-1)
        np.testing.assert_allclose(inter["projection"][0], projection, rtol=1e-5, atol=1e-7)
        # ψ(φ(x)): the unconditional discriminator on the same parameters (less the table).
        params = {k: v for k, v in d_vars["params"].items() if k != "class_embed"}
        psi = plain.apply({**d_vars, "params": params}, x, train=train,
                          mutable=["batch_stats"] if train else False)
        psi = psi[0] if train else psi
        np.testing.assert_allclose(logits, np.asarray(psi) + projection, rtol=1e-5, atol=1e-6)
    assert np.abs(projection).max() > 1e-4  # the check above is not vacuous


def test_conditional_batch_norm_over_devices_matches_one_device(num_devices):
    small = conditional_models()
    gen = small["gen"].clone(axis_name="data")
    z, y = normal(9, (BATCH, LATENT)), labels()
    body = lambda m, v, z, y: (lambda out: (out[0], out[1]["batch_stats"]))(
        m.apply(v, z, y=y, train=True, mutable=["batch_stats"]))
    images, stats = jax.jit(functools.partial(body, gen.clone(axis_name=None)))(
        small["g_vars"], z, y)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    mapped = jax.jit(jax.shard_map(functools.partial(body, gen), mesh=mesh,
                                   in_specs=(P(), P("data"), P("data")),
                                   out_specs=(P("data"), P())))
    images_m, stats_m = mapped(small["g_vars"], z, y)
    np.testing.assert_allclose(images_m, images, rtol=1e-4, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 stats_m, stats)


def test_missing_and_extra_labels_get_clear_errors():
    key = jax.random.key(0)
    z, x = jnp.zeros((2, LATENT)), jnp.zeros((2, 32, 32, 1))
    y = jnp.zeros((2,), jnp.int32)
    gen = Generator(latent_dim=LATENT, features=FEATURES, channels=1, image_size=32)
    disc = Discriminator(features=FEATURES, image_size=32)
    for model, inputs in [(gen, z), (disc, x)]:
        cond = model.clone(num_classes=K)
        name = type(model).__name__
        with pytest.raises(ValueError, match=rf"{name} is class-conditional \(num_classes=5\)"):
            cond.init(key, inputs, train=False)
        with pytest.raises(ValueError, match=rf"{name} is unconditional \(num_classes=0\)"):
            model.init(key, inputs, y=y, train=False)
        with pytest.raises(ValueError, match=r"shape \[2\]"):
            cond.init(key, inputs, y=jnp.zeros((3,), jnp.int32), train=False)
        with pytest.raises(TypeError, match="must be integers"):
            cond.init(key, inputs, y=jnp.zeros((2,), jnp.float32), train=False)
        with pytest.raises(ValueError, match=r"in \[0, 4\]"):
            cond.init(key, inputs, y=jnp.array([0, K]), train=False)
        with pytest.raises(TypeError, match="positional"):
            cond.init(key, inputs, y, train=False)  # y is keyword-only, like train
