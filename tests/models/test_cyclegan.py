"""CycleGAN generator and PatchGAN: reference sizes, layer shapes, float64 NumPy forward passes.

The NumPy reference implements PyTorch's layer semantics directly (ReflectionPad2d, Conv2d,
ConvTranspose2d with padding/output_padding, InstanceNorm2d(affine=False)), so matching it
checks the port of pytorch-CycleGAN-and-pix2pix layer by layer, not just the shapes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.math.cycle import cycle_consistency_loss
from jaxgen.models.cyclegan import PatchDiscriminator, ResnetGenerator, patch_output_size

IMAGE_256 = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)


def count(tree) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


def kernel_shapes(params, names):
    return [tuple(_lookup(params, name)["kernel"].shape) for name in names]


def _lookup(params, path):
    for part in path.split("/"):
        params = params[part]
    return params


def _layer_paths(params, prefix=""):
    """Every module path that owns a kernel."""
    paths = []
    for name, sub in params.items():
        if "kernel" in sub:
            paths.append(prefix + name)
        else:
            paths += _layer_paths(sub, prefix + name + "/")
    return paths


# Layer by layer from the reference ResnetGenerator(3, 3, ngf=64, n_blocks=9) and
# NLayerDiscriminator(3, ndf=64, n_layers=3), PyTorch [out, in, kh, kw] written as flax's
# [kh, kw, in, out] (ConvTranspose2d's [in, out, kh, kw] likewise as [kh, kw, in, out]).
GENERATOR_LAYERS = (
    [("stem", (7, 7, 3, 64)), ("down_0", (3, 3, 64, 128)), ("down_1", (3, 3, 128, 256))]
    + [(f"block_{i}/conv_{j}", (3, 3, 256, 256)) for i in range(9) for j in range(2)]
    + [("up_0", (3, 3, 256, 128)), ("up_1", (3, 3, 128, 64)), ("head", (7, 7, 64, 3))]
)
DISCRIMINATOR_LAYERS = [
    ("conv_0", (4, 4, 3, 64)), ("conv_1", (4, 4, 64, 128)), ("conv_2", (4, 4, 128, 256)),
    ("conv_3", (4, 4, 256, 512)), ("head", (4, 4, 512, 1)),
]


@pytest.mark.parametrize("model, layers, want", [
    (ResnetGenerator(), GENERATOR_LAYERS, 11_378_179),
    (PatchDiscriminator(), DISCRIMINATOR_LAYERS, 2_764_737),
])
def test_reference_parameter_counts_and_layers(model, layers, want):
    params = jax.eval_shape(model.init, jax.random.key(0), IMAGE_256)["params"]
    assert count(params) == want
    names = [name for name, _ in layers]
    assert sorted(_layer_paths(params)) == sorted(names), "extra or missing layers"
    assert kernel_shapes(params, names) == [shape for _, shape in layers]
    # Instance norm without affine parameters, so every convolution carries a bias.
    for name, shape in layers:
        assert _lookup(params, name)["bias"].shape == (shape[-1],)
    # The same count from the layer list: kernels plus one bias per output channel.
    assert sum(np.prod(s) + s[-1] for _, s in layers) == want


def test_output_shapes_at_256():
    generator, discriminator = ResnetGenerator(), PatchDiscriminator()
    g_params = jax.eval_shape(generator.init, jax.random.key(0), IMAGE_256)
    d_params = jax.eval_shape(discriminator.init, jax.random.key(0), IMAGE_256)
    fake = jax.eval_shape(generator.apply, g_params, IMAGE_256)
    assert (fake.shape, fake.dtype) == ((1, 256, 256, 3), jnp.float32)
    assert jax.eval_shape(discriminator.apply, d_params, fake).shape == (1, 30, 30, 1)
    assert [patch_output_size(s) for s in (256, 128, 70, 32)] == [30, 14, 6, 2]
    # One output patch sees 70×70 input pixels: receptive field of the 5 convolutions.
    field = 1
    for stride in (1, 1, 2, 2, 2):  # last layer first
        field = (field - 1) * stride + 4
    assert field == 70


def test_init_is_normal_002_with_zero_bias():
    # Parameter shapes do not depend on the image size, so a tiny image suffices; an RBG key
    # because threefry's init graph is slow to compile on CPU.
    model = ResnetGenerator(num_blocks=1)
    params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 8, 8, 3)))
    kernel = np.asarray(params["params"]["block_0"]["conv_0"]["kernel"])  # 589,824 draws
    assert abs(kernel.std() - 0.02) < 2e-4 and abs(kernel.mean()) < 2e-4
    biases = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
              if path[-1].key == "bias"]
    assert len(biases) == 8 and not any(np.any(b) for b in biases)


def reference_init(model, x, seed):
    """Parameters drawn as the reference initialises them, N(0, 0.02²) kernels, plus nonzero
    biases (the reference starts them at zero) so that the biases' placement is checked too.

    NumPy draws into ``jax.eval_shape`` shapes: compiling ``model.init`` costs far more on CPU.
    """
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    return jax.tree_util.tree_map_with_path(
        lambda path, s: rng.normal(0.1 if path[-1].key == "bias" else 0.0, 0.02, s.shape
                                   ).astype(np.float32), shapes)


SMALL_GENERATOR = ResnetGenerator(num_blocks=2, features=8)
SMALL_DISCRIMINATOR = PatchDiscriminator(features=8)


@pytest.fixture(scope="module")
def small_run():
    """One jitted forward pass of both small models; H ≠ W catches transposed axes."""
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 24, 3)).astype(np.float32)
    g_params = reference_init(SMALL_GENERATOR, x, seed=1)
    d_params = reference_init(SMALL_DISCRIMINATOR, x, seed=2)
    fake = np.asarray(jax.jit(SMALL_GENERATOR.apply)(g_params, x))
    scores = np.asarray(jax.jit(SMALL_DISCRIMINATOR.apply)(d_params, fake))
    return {"x": x, "g_params": g_params, "d_params": d_params, "fake": fake, "scores": scores}


def test_small_forward_pass_under_jit_has_tanh_range_and_patch_map(small_run):
    fake, scores = small_run["fake"], small_run["scores"]
    assert fake.shape == (2, 32, 24, 3) and fake.dtype == np.float32
    assert np.all(np.abs(fake) <= 1.0) and fake.std() > 1e-2
    assert scores.shape == (2, patch_output_size(32), patch_output_size(24), 1) == (2, 2, 1, 1)
    assert np.all(np.isfinite(scores))


# --- float64 NumPy reference with PyTorch's layer semantics -----------------------------


def np_conv(x, kernel, bias, *, stride=1, pad=0):
    """Conv2d (cross-correlation) with zero padding; kernel [kh, kw, in, out]."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, kernel.shape[-1]))
    for a in range(kh):
        for b in range(kw):
            window = x[:, a:a + stride * ho:stride, b:b + stride * wo:stride, :]
            out += window @ kernel[a, b]
    return out + bias


def np_conv_transpose(x, torch_weight, bias, *, stride=2, pad=1, output_pad=1):
    """ConvTranspose2d by its definition: each input pixel scatters weight·x, then crop."""
    kh, kw = torch_weight.shape[2:]
    b, h, w, _ = x.shape
    full = np.zeros((b, (h - 1) * stride + kh + output_pad, (w - 1) * stride + kw + output_pad,
                     torch_weight.shape[1]))
    for a in range(kh):
        for c in range(kw):
            full[:, a:a + stride * h:stride, c:c + stride * w:stride, :] += (
                x @ torch_weight[:, :, a, c])
    ho = (h - 1) * stride - 2 * pad + kh + output_pad
    wo = (w - 1) * stride - 2 * pad + kw + output_pad
    return full[:, pad:pad + ho, pad:pad + wo, :] + bias


def np_instance_norm(x):
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)  # biased, as PyTorch normalizes
    return (x - mean) / np.sqrt(var + 1e-5)


def np_reflect(x, pad):
    return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def np_generator(p, x, num_blocks):
    relu = lambda v: np.maximum(v, 0.0)
    conv = lambda name, v, **kw: np_conv(v, p[name]["kernel"], p[name]["bias"], **kw)
    h = relu(np_instance_norm(conv("stem", np_reflect(x, 3))))
    for i in range(2):
        h = relu(np_instance_norm(conv(f"down_{i}", h, stride=2, pad=1)))
    for i in range(num_blocks):
        block = p[f"block_{i}"]
        r = relu(np_instance_norm(np_conv(np_reflect(h, 1), **block["conv_0"])))
        h = h + np_instance_norm(np_conv(np_reflect(r, 1), **block["conv_1"]))
    for i in range(2):
        # flax's kernel is the spatially flipped PyTorch weight, [kh, kw, in, out].
        torch_weight = p[f"up_{i}"]["kernel"][::-1, ::-1].transpose(2, 3, 0, 1)
        h = relu(np_instance_norm(np_conv_transpose(h, torch_weight, p[f"up_{i}"]["bias"])))
    return np.tanh(conv("head", np_reflect(h, 3)))


def np_discriminator(p, x, num_layers):
    leaky = lambda v: np.where(v > 0, v, 0.2 * v)
    h = leaky(np_conv(x, **p["conv_0"], stride=2, pad=1))
    for n in range(1, num_layers + 1):
        stride = 2 if n < num_layers else 1
        h = leaky(np_instance_norm(np_conv(h, **p[f"conv_{n}"], stride=stride, pad=1)))
    return np_conv(h, **p["head"], stride=1, pad=1)


def _float64(params):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])


def test_generator_matches_pytorch_semantics_in_float64(small_run):
    want = np_generator(_float64(small_run["g_params"]), small_run["x"].astype(np.float64),
                        num_blocks=SMALL_GENERATOR.num_blocks)
    np.testing.assert_allclose(small_run["fake"], want, atol=1e-4)


def test_discriminator_matches_pytorch_semantics_in_float64(small_run):
    want = np_discriminator(_float64(small_run["d_params"]),
                            small_run["fake"].astype(np.float64), num_layers=3)
    np.testing.assert_allclose(small_run["scores"], want, rtol=1e-4, atol=1e-4)


def test_cycle_loss_gradients_reach_both_generators():
    generator = ResnetGenerator(num_blocks=1, features=4)  # G and F: two parameter trees
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3), minval=-1, maxval=1)
    y = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3), minval=-1, maxval=1)
    g_params, f_params = reference_init(generator, x, seed=2), reference_init(generator, y, seed=3)
    stack = lambda a, b: jax.tree.map(lambda u, v: jnp.stack([u, v]), a, b)

    def loss(g_params, f_params):
        # F(G(x)) and G(F(y)) as one pass vmapped over the direction: XLA then compiles two
        # generator applications instead of four, which is most of this test's CPU time.
        translate_twice = lambda first, second, images: generator.apply(
            second, generator.apply(first, images))
        x_cycled, y_cycled = jax.vmap(translate_twice)(
            stack(g_params, f_params), stack(f_params, g_params), jnp.stack([x, y]))
        return cycle_consistency_loss(x, x_cycled, y, y_cycled).mean()

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(g_params, f_params)
    for tree in grads:
        norms = {jax.tree_util.keystr(path): float(jnp.linalg.norm(leaf))
                 for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
        assert len(norms) == 2 * (3 + 2 + 2 + 1)  # kernel and bias of 8 convolutions
        for path, norm in norms.items():
            if "kernel" in path or "head" in path:
                assert norm > 1e-6, path
            else:
                # A per-channel bias right before affine-free instance norm is subtracted
                # out again: the reference keeps these parameters, but they never learn.
                assert norm < 1e-6 * norms[path.replace("bias", "kernel")] + 1e-9, path


def test_bad_inputs_get_clear_errors():
    generator, discriminator = ResnetGenerator(num_blocks=1, features=4), PatchDiscriminator()
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        generator.init(jax.random.key(0), jnp.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match="divisible by 4"):
        generator.init(jax.random.key(0), jnp.zeros((1, 30, 32, 3)))
    with pytest.raises(ValueError, match="at least 8"):
        generator.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        generator.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3), jnp.uint8))
    with pytest.raises(ValueError, match="larger images"):
        discriminator.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        discriminator.init(jax.random.key(0), jnp.zeros((1, 1, 256, 256, 3)))
    with pytest.raises(TypeError):  # hyperparameters are keyword-only
        ResnetGenerator(9)
