"""DDPM UNet: the paper's parameter count, shapes, time and class conditioning, dropout, bf16,
errors."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models.unet import ResnetBlock, UNet, timestep_embedding
from tests.jaxprs import matmul_input_dtypes

# Tiny config: two levels (16 -> 8), attention at 8 (in the down, middle and up paths).
TINY = dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.5,
            num_groups=8)
B, SHAPE = 2, (16, 16, 1)


def count_params(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _inputs():
    x = jax.random.normal(jax.random.key(1), (B, *SHAPE))
    t = jnp.array([3, 700], jnp.int32)
    return x, t


def _key(seed):
    # XLA:CPU compiles threefry slowly and init/dropout call it once per layer; the rbg
    # generator compiles about twice as fast and changes nothing these tests check.
    return jax.random.key(seed, impl="rbg")


@pytest.fixture(scope="module")
def tiny():
    """The tiny model, its init params, random params and a jitted apply."""
    model = UNet(**TINY)
    x, t = _inputs()
    params = jax.jit(lambda k: model.init(k, x, t, train=False))(_key(0))["params"]
    # Zero-initialised convs hide everything behind them (dropout, the residual branches),
    # so most checks run on random params, drawn in NumPy to avoid one compile per shape.
    rng = np.random.default_rng(0)
    perturbed = jax.tree.map(
        lambda p: jnp.asarray(p + 0.1 * rng.standard_normal(p.shape), jnp.float32), params)
    apply = jax.jit(model.apply, static_argnames="train")
    return model, params, perturbed, apply


def test_cifar10_parameter_count_matches_reference():
    # Ho et al. 2020 (arXiv:2006.11239) report 35.7M; diffusion_tf's model has 35,746,307.
    model = UNet(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 dropout=0.1)
    shapes = jax.eval_shape(
        lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,), jnp.int32),
                             train=False),
        jax.random.key(0))
    assert count_params(shapes) == 35_746_307
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
    assert {"down_1_attn_0", "mid_attn_1", "up_1_attn_2"} <= set(shapes["params"])
    assert not any(name.startswith(("down_0_attn", "down_2_attn")) for name in shapes["params"])


def test_timestep_embedding_matches_formula():
    t = jnp.array([0, 1, 999])
    emb = np.asarray(timestep_embedding(t, 8))
    freqs = np.exp(-np.arange(4) * np.log(10000.0) / 3)
    want = np.concatenate([np.sin(np.outer([0, 1, 999], freqs)),
                           np.cos(np.outer([0, 1, 999], freqs))], axis=1)
    assert emb.shape == (3, 8) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, want, atol=1e-4)
    odd = timestep_embedding(t, 9)
    assert odd.shape == (3, 9) and np.all(np.asarray(odd[:, -1]) == 0)


def test_shape_dtype_and_zero_output_at_init(tiny):
    model, params, _, apply = tiny
    x, t = _inputs()
    out = apply({"params": params}, x, t, train=False)
    assert out.shape == (B, *SHAPE) and out.dtype == jnp.float32
    # conv_out is zero-initialised (the reference's init_scale=0), so ε_θ ≡ 0 at init.
    assert np.all(np.asarray(out) == 0)
    assert params["conv_out"]["kernel"].shape == (3, 3, 16, 1)
    three = UNet(**TINY, out_ch=3)
    shapes = jax.eval_shape(lambda k: three.init(k, x, t, train=False), jax.random.key(0))
    assert shapes["params"]["conv_out"]["kernel"].shape == (3, 3, 16, 3)


def test_output_depends_on_timestep(tiny):
    _, _, perturbed, apply = tiny
    x, _ = _inputs()
    out = lambda t: np.asarray(apply({"params": perturbed}, x, jnp.asarray(t), train=False))
    same = out([5, 5])
    assert np.all(np.isfinite(same))
    # Same images, different timesteps: the prediction must change at every example.
    diff = np.abs(out([5, 5]) - out([600, 900])).reshape(B, -1).max(axis=1)
    assert np.all(diff > 1e-3), diff
    np.testing.assert_array_equal(out([5, 5]), same)


def test_dropout_only_in_train_mode(tiny):
    _, _, perturbed, apply = tiny
    x, t = _inputs()
    run = lambda key, train: np.asarray(
        apply({"params": perturbed}, x, t, train=train, rngs={"dropout": _key(key)}))
    eval_a, eval_b = run(0, False), run(1, False)
    np.testing.assert_array_equal(eval_a, eval_b)
    np.testing.assert_array_equal(eval_a, np.asarray(apply({"params": perturbed}, x, t,
                                                           train=False)))
    train_a, train_a2, train_b = run(0, True), run(0, True), run(1, True)
    np.testing.assert_array_equal(train_a, train_a2)
    assert np.abs(train_a - train_b).max() > 1e-3
    assert np.abs(train_a - eval_a).max() > 1e-3


def test_bfloat16_matches_float32(tiny):
    _, _, perturbed, apply = tiny
    x, t = _inputs()
    bf16 = UNet(**TINY, dtype=jnp.bfloat16)
    shapes = jax.eval_shape(lambda k: bf16.init(k, x, t, train=False), jax.random.key(0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))
    out16 = jax.jit(bf16.apply, static_argnames="train")({"params": perturbed}, x, t,
                                                         train=False)
    out32 = apply({"params": perturbed}, x, t, train=False)
    assert out16.dtype == jnp.float32
    scale = float(jnp.abs(out32).max())
    assert scale > 0.1
    # bf16 keeps ~3 significant digits; errors compound over ~20 layers.
    err = float(jnp.abs(out16 - out32).max())
    assert 0 < err < 0.05 * scale, (err, scale)
    # Every conv and matmul (attention included) must take bf16 operands.
    jaxpr = jax.make_jaxpr(lambda p: bf16.apply({"params": p}, x, t, train=False))(perturbed)
    assert matmul_input_dtypes(jaxpr.jaxpr) == {"bfloat16"}


def test_bad_inputs_get_clear_errors():
    model = UNet(**TINY)
    key = jax.random.key(0)
    init = lambda x, t, m=model: jax.eval_shape(lambda k: m.init(k, x, t, train=False), key)
    x, t = jnp.zeros((B, *SHAPE)), jnp.zeros((B,), jnp.int32)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        init(jnp.zeros((B, 16, 16)), t)
    with pytest.raises(TypeError, match="floating point"):
        init(jnp.zeros((B, *SHAPE), jnp.uint8), t)
    with pytest.raises(ValueError, match="divisible by 2; got H=15"):
        init(jnp.zeros((B, 15, 16, 1)), t)
    with pytest.raises(ValueError, match=r"shape \[B\] = \(2,\)"):
        init(x, jnp.zeros((B + 1,), jnp.int32))
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        init(x, jnp.zeros((), jnp.int32))
    with pytest.raises(ValueError, match="not divisible by num_groups=32"):
        init(x, t, UNet(**{**TINY, "num_groups": 32}))
    with pytest.raises(ValueError, match=r"attn_resolutions \[4\] never occur"):
        init(x, t, UNet(**{**TINY, "attn_resolutions": (4,)}))


# ---- Class conditioning ------------------------------------------------------------------

K = 3  # classes of the conditional tiny model; label K is the null class ∅


def _shapes(model, *args):
    return jax.eval_shape(lambda k: model.init(k, *args, train=False), jax.random.key(0))


def _tree_shapes(tree):
    return jax.tree.map(lambda leaf: (leaf.shape, leaf.dtype), tree)


@pytest.fixture(scope="module")
def conditional(tiny):
    """The tiny model with K classes, and random params: the unconditional model's perturbed
    params plus a random class table (so both models share every other parameter)."""
    model = UNet(**TINY, num_classes=K)
    _, _, perturbed, _ = tiny
    table = np.random.default_rng(1).standard_normal((K + 1, 4 * TINY["ch"]))
    params = {**perturbed, "class_embed": {"embedding": jnp.asarray(table, jnp.float32)}}
    return model, params, jax.jit(model.apply, static_argnames="train")


def test_num_classes_0_is_todays_parameter_tree_and_output(tiny):
    model, params, perturbed, apply = tiny
    x, t = _inputs()
    default = _tree_shapes(_shapes(UNet(**TINY), x, t))
    assert _tree_shapes(_shapes(UNet(**TINY, num_classes=0), x, t)) == default
    assert "class_embed" not in default["params"]
    explicit = jax.jit(UNet(**TINY, num_classes=0).apply, static_argnames="train")
    np.testing.assert_array_equal(explicit({"params": perturbed}, x, t, train=False),
                                  apply({"params": perturbed}, x, t, train=False))
    # The conditional tree is today's plus one table of K + 1 rows of the time embedding's
    # width (4·ch); the paper's CIFAR-10 model gains 11 · 512 parameters for 10 classes.
    cond = _tree_shapes(_shapes(UNet(**TINY, num_classes=K), x, t, jnp.array([0, K])))
    table = cond["params"].pop("class_embed")
    assert table == {"embedding": ((K + 1, 4 * TINY["ch"]), jnp.float32)}
    assert cond == default
    cifar = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                 dropout=0.1)
    x32, t32 = jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,), jnp.int32)
    assert count_params(_shapes(UNet(**cifar, num_classes=0), x32, t32)) == 35_746_307
    assert count_params(_shapes(UNet(**cifar, num_classes=10), x32, t32,
                                jnp.zeros((1,), jnp.int32))) == 35_746_307 + 11 * 512


def test_labels_change_the_output_under_jit(conditional):
    model, params, apply = conditional
    x, t = _inputs()
    out = lambda y: np.asarray(apply({"params": params}, x, t, jnp.asarray(y, jnp.int32),
                                     train=False))
    a = out([0, 0])
    assert a.shape == (B, *SHAPE) and a.dtype == np.float32 and np.all(np.isfinite(a))
    for other in ([1, 1], [2, 2], [K, K]):  # every class, and the null class, differ
        diff = np.abs(out(other) - a).reshape(B, -1).max(axis=1)
        assert np.all(diff > 1e-3), (other, diff)
    np.testing.assert_array_equal(out([0, 0]), a)
    # y may be passed by keyword too.
    np.testing.assert_array_equal(
        apply({"params": params}, x, t, y=jnp.array([0, 0]), train=False), a)


def test_class_embedding_is_added_to_the_time_embedding(conditional, tiny):
    model, params, apply = conditional
    x, t = _inputs()
    y = jnp.array([2, K], jnp.int32)

    @jax.jit
    def block_inputs(params):
        """The temb every ResNet block receives, and temb_dense1's output."""
        seen = []

        def record(next_fun, args, kwargs, context):
            if context.method_name == "__call__" and isinstance(context.module, ResnetBlock):
                seen.append(args[1])
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(record):
            _, state = model.apply({"params": params}, x, t, y, train=False,
                                   capture_intermediates=lambda m, _: m.name == "temb_dense1",
                                   mutable=["intermediates"])
        return seen, state["intermediates"]["temb_dense1"]["__call__"][0]

    # Every ResNet block receives temb_dense1's output plus the label's row of the table.
    seen, temb = block_inputs(params)
    want = np.asarray(temb) + np.asarray(params["class_embed"]["embedding"])[np.asarray(y)]
    levels, per_level = len(TINY["ch_mult"]), TINY["num_res_blocks"]
    assert len(seen) == levels * per_level + 2 + levels * (per_level + 1)  # down, mid, up
    for got in seen:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    # So with a zero table the conditional model is the unconditional one, for every label.
    _, _, perturbed, apply_unconditional = tiny
    zero = {**params, "class_embed": {"embedding": jnp.zeros_like(
        params["class_embed"]["embedding"])}}
    np.testing.assert_allclose(apply({"params": zero}, x, t, y, train=False),
                               apply_unconditional({"params": perturbed}, x, t, train=False),
                               rtol=1e-5, atol=1e-5)


def test_null_class_is_the_last_row(conditional):
    model, params, apply = conditional
    assert model.null_class == K
    with pytest.raises(ValueError, match="no null class"):
        _ = UNet(**TINY).null_class
    x, t = _inputs()
    table = np.asarray(params["class_embed"]["embedding"])
    with_table = lambda tab, y: np.asarray(apply(
        {"params": {**params, "class_embed": {"embedding": jnp.asarray(tab)}}}, x, t,
        jnp.full((B,), y, jnp.int32), train=False))
    null = with_table(table, K)
    # The null label reads the last row: giving it row 0's values gives class 0's output,
    # and changing it changes the null output but no class's.
    np.testing.assert_array_equal(with_table(np.concatenate([table[:K], table[:1]]), K),
                                  with_table(table, 0))
    changed = np.concatenate([table[:K], table[K:] + 1.0])
    assert np.abs(with_table(changed, K) - null).max() > 1e-3
    for label in range(K):
        np.testing.assert_array_equal(with_table(changed, label), with_table(table, label))


def test_missing_extra_and_bad_labels_get_clear_errors():
    x, t = jnp.zeros((B, *SHAPE)), jnp.zeros((B,), jnp.int32)
    cond, uncond = UNet(**TINY, num_classes=K), UNet(**TINY)
    with pytest.raises(ValueError, match=r"class-conditional \(num_classes=3\): pass labels y"):
        _shapes(cond, x, t)
    with pytest.raises(ValueError, match=r"unconditional \(num_classes=0\) but was given"):
        _shapes(uncond, x, t, jnp.zeros((B,), jnp.int32))
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        _shapes(cond, x, t, jnp.zeros((B, 1), jnp.int32))
    with pytest.raises(TypeError, match="must be integers"):
        _shapes(cond, x, t, jnp.zeros((B,), jnp.float32))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"in \[0, 3\]"):  # known values are range-checked
        cond.init(key, x, t, jnp.array([0, K + 1]), train=False)
    with pytest.raises(ValueError, match=r"in \[0, 3\]"):
        cond.init(key, x, t, jnp.array([-1, 0]), train=False)
    with pytest.raises(ValueError, match="num_classes must be >= 0"):
        _shapes(UNet(**TINY, num_classes=-1), x, t)
