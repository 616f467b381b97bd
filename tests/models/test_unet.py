"""DDPM UNet: the paper's parameter count, shapes, time conditioning, dropout, bf16, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models.unet import UNet, timestep_embedding

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


def _matmul_input_dtypes(jaxpr) -> set[str]:
    """Input dtypes of every conv / dot_general in ``jaxpr``, nested jaxprs included."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
            found.update(str(v.aval.dtype) for v in eqn.invars)
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= _matmul_input_dtypes(inner)
    return found


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
    assert _matmul_input_dtypes(jaxpr.jaxpr) == {"bfloat16"}


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
