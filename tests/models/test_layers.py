"""Zero-free strided layers equal the layers they replace: outputs, gradients, parameters.

``layers.ConvTranspose`` against ``flax.linen.ConvTranspose``, ``layers.Conv`` (strided
convolutions whose input gradient is a sub-pixel transposed convolution) against
``flax.linen.Conv`` and ``layers.UpsampleConv`` against nearest upsampling followed by
``flax.linen.Conv``, alone and inside every model that uses them."""

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgen.models import layers
from jaxgen.models.autoencoders import ConvDecoder, ConvEncoder
from jaxgen.models.cyclegan import PatchDiscriminator, ResnetGenerator
from jaxgen.models.dcgan import Discriminator, Generator
from jaxgen.models.unet import UNet

# float32 sums of the same products in another order: relative to the output's scale.
RTOL = 2e-5


def assert_close(actual, expected, rtol=RTOL):
    """Each leaf within `rtol` of its largest magnitude; leaves that are ~0 in exact
    arithmetic (e.g. the gradient of a bias followed by a normalisation) against 1e-3 of the
    largest leaf of the tree."""
    leaves = jax.tree.leaves(expected)
    tree_scale = max(float(jnp.max(jnp.abs(e))) for e in leaves)
    for a, e in zip(jax.tree.leaves(actual), leaves, strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype
        scale = max(float(jnp.max(jnp.abs(e))), 1e-3 * tree_scale, 1e-30)
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0, atol=rtol * scale)


def output_and_grads(module, variables, x, cotangent_key):
    """Output and the vector-Jacobian product of a random cotangent w.r.t. input and params."""
    out, vjp = jax.vjp(lambda v, x: module.apply(v, x), variables, x)
    cotangent = jax.random.normal(cotangent_key, out.shape, out.dtype)
    return out, vjp(cotangent)


# (input [B, *spatial, C], features, kernel, strides, padding): the models' layers first.
TRANSPOSE_CASES = [
    ((3, 4, 4, 16), 8, (4, 4), (2, 2), ((2, 2), (2, 2))),      # DCGAN ×2 stage
    ((3, 1, 1, 10), 8, (4, 4), (1, 1), ((3, 3), (3, 3))),      # DCGAN 1×1 → 4×4 stem
    ((2, 8, 8, 8), 4, (3, 3), (2, 2), ((1, 2), (1, 2))),       # CycleGAN upsampling
    ((2, 7, 7, 8), 4, (4, 4), (2, 2), "SAME"),                  # conv VAE decoder
    ((2, 5, 6, 3), 4, (3, 3), (2, 2), "SAME"),
    ((2, 5, 6, 3), 4, (4, 4), (2, 2), "VALID"),
    ((2, 5, 6, 3), 2, (5, 3), (3, 2), ((1, 3), (0, 2))),      # phases with unequal tap counts
    ((2, 5, 6, 3), 2, (4, 4), (2, 2), ((1, -1), (3, 1))),      # negative padding crops
    ((2, 5, 6, 3), 2, (5, 5), (2, 2), ((1, 3), (2, 2))),       # odd output length
    ((2, 9, 3), 4, (4,), (2,), ((2, 2),)),                      # 1-D
    ((1, 3, 4, 2, 3), 2, (3, 2, 3), (2, 2, 1), "SAME"),         # 3-D, mixed strides
]


@pytest.mark.parametrize("shape, features, kernel, strides, padding", TRANSPOSE_CASES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_transpose_equals_flax_forward_and_gradients(shape, features, kernel, strides,
                                                          padding, use_bias):
    x = jax.random.normal(jax.random.key(0), shape)
    assert_layer_equals_flax(
        layers.ConvTranspose, nn.ConvTranspose, x,
        dict(features=features, kernel_size=kernel, strides=strides, padding=padding,
             use_bias=use_bias, bias_init=nn.initializers.normal(1.0)))


def assert_layer_equals_flax(ours_cls, theirs_cls, x, kw, rtol=RTOL):
    """Same parameters from the same key; the same output and gradients (and dtypes). Returns
    ``(ours, theirs, variables)``."""
    ours, theirs = ours_cls(**kw), theirs_cls(**kw)
    variables = theirs.init(jax.random.key(1), x)
    assert_close(ours.init(jax.random.key(1), x), variables, rtol=0)
    got = jax.jit(lambda v, x: output_and_grads(ours, v, x, jax.random.key(2)))(variables, x)
    want = jax.jit(lambda v, x: output_and_grads(theirs, v, x, jax.random.key(2)))(variables, x)
    assert_close(got, want, rtol=rtol)
    return ours, theirs, variables


def to_bfloat16(*args, dtype=None, inexact=True):
    """A ``promote_dtype`` hook that computes in bfloat16 whatever the layer's dtype."""
    return nn.dtypes.promote_dtype(*args, dtype=jnp.bfloat16, inexact=inexact)


# How flax.linen.ConvTranspose reads each of its attributes, against layers.ConvTranspose
# (which hands them to flax.linen.Conv, or falls back to ConvTranspose's own computation):
# (input shape, input dtype, attributes, rtol). A flax change the layer does not follow —
# another padding or stride form, dtype rule, initialisation order, bias — fails here.
BF16 = 2e-2  # bfloat16 outputs, the same products summed in another order
ATTRIBUTE_CASES = [
    ((2, 9, 3), jnp.float32, dict(kernel_size=3, strides=2, padding="VALID"), RTOL),  # ints
    ((2, 5, 6, 3), jnp.float32, dict(kernel_size=(3, 3), strides=None), RTOL),  # default
    ((2, 5, 6, 3), jnp.float32, dict(kernel_size=(4, 4), strides=2, padding=1), RTOL),
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(4, 3), strides=(2, 3), padding=(2, (0, 1))), RTOL),  # int and pair
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(4, 4), strides=(2, 2), padding=[(1, 2), (2, 1)]), RTOL),  # a list
    ((2, 5, 6, 3), jnp.float32, dict(kernel_size=(3, 3), strides=2, kernel_dilation=1), RTOL),
    ((2, 5, 6, 3), jnp.float32, dict(kernel_size=(3, 3), strides=2, use_bias=False), RTOL),
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(3, 3), strides=2, precision=lax.Precision.HIGHEST), RTOL),
    ((2, 5, 6, 3), jnp.bfloat16, dict(kernel_size=(4, 4), strides=2), RTOL),  # promoted
    ((2, 5, 6, 3), jnp.float32, dict(kernel_size=(4, 4), strides=2, dtype=jnp.bfloat16), BF16),
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(4, 4), strides=2, param_dtype=jnp.bfloat16), RTOL),
    ((2, 5, 6, 3), jnp.bfloat16,
     dict(kernel_size=(4, 4), strides=2, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16), BF16),
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(4, 4), strides=2, dtype=jnp.bfloat16,
          preferred_element_type=jnp.float32), BF16),
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(4, 4), strides=2, promote_dtype=to_bfloat16), BF16),
    ((2, 5, 6, 3), jnp.float32,
     dict(kernel_size=(3, 3), strides=2, kernel_init=nn.initializers.lecun_uniform(),
          bias_init=nn.initializers.uniform(2.0)), RTOL),
    ((5, 6, 3), jnp.float32, dict(kernel_size=(3, 3), strides=2), RTOL),  # no batch axis
    ((2, 3, 5, 6, 3), jnp.float32, dict(kernel_size=(3, 3), strides=2), RTOL),  # two
]


@pytest.mark.parametrize("shape, dtype, attributes, rtol", ATTRIBUTE_CASES)
def test_conv_transpose_reads_its_attributes_as_flax_does(shape, dtype, attributes, rtol):
    x = jax.random.normal(jax.random.key(0), shape, dtype)
    assert_layer_equals_flax(layers.ConvTranspose, nn.ConvTranspose, x,
                             dict(features=4, bias_init=nn.initializers.normal(1.0))
                             | attributes, rtol=rtol)


def test_conv_transpose_handles_every_flax_attribute():
    """A new ``flax.linen.ConvTranspose`` attribute fails here until the layer handles it:
    forwarded to ``flax.linen.Conv`` or a reason to fall back to flax's computation."""
    forwarded = {"features", "kernel_size", "strides", "padding", "use_bias", "dtype",
                 "param_dtype", "precision", "kernel_init", "bias_init", "promote_dtype",
                 "preferred_element_type", "parent", "name"}
    fallback = {"kernel_dilation", "mask", "transpose_kernel"}
    assert {f.name for f in dataclasses.fields(nn.ConvTranspose)} == forwarded | fallback


def convolutions_off_cpu(module, variables, x):
    """The convolution ops of ``module.apply`` lowered for a GPU (no GPU needed)."""
    text = jax.jit(module.apply).trace(variables, x).lower(
        lowering_platforms=("cuda",)).as_text()
    return [re.sub(r"%\S+", "%", line.strip()) for line in text.splitlines()
            if "stablehlo.convolution" in line]


@pytest.mark.parametrize("ours, theirs, kw", [
    (layers.ConvTranspose, nn.ConvTranspose,
     dict(kernel_size=(4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))),
    (layers.ConvTranspose, nn.ConvTranspose, dict(kernel_size=(3, 3), strides=(2, 2))),
    (layers.Conv, nn.Conv, dict(kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))),
])
def test_other_platforms_run_flax_convolution_itself(ours, theirs, kw):
    """Off CPUs the layers lower to exactly the convolution flax's layers lower to."""
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    variables = theirs(features=4, **kw).init(jax.random.key(1), x)
    want = convolutions_off_cpu(theirs(features=4, **kw), variables, x)
    assert len(want) == 1
    assert convolutions_off_cpu(ours(features=4, **kw), variables, x) == want


@pytest.mark.parametrize("padding", [((1, 2), (2, 1)), ((3, 3), (0, 1))])
def test_input_dilated_conv_equals_flax(padding):
    """``layers.Conv`` with input dilation (a transposed convolution: sub-pixel on CPUs)."""
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    assert_layer_equals_flax(layers.Conv, nn.Conv, x,
                             dict(features=4, kernel_size=(4, 3), input_dilation=(2, 3),
                                  padding=padding, bias_init=nn.initializers.normal(1.0)))
    with pytest.raises(ValueError, match="String padding is not implemented"):
        layers.Conv(4, (3, 3), input_dilation=(2, 2), padding="SAME").init(
            jax.random.key(1), x)


# (input, features, kernel, strides, padding) of strided convolutions: the models' first.
STRIDED_CASES = [
    ((3, 16, 16, 8), 4, (4, 4), (2, 2), ((1, 1), (1, 1))),      # DCGAN / PatchGAN layers
    ((2, 9, 9, 8), 4, (3, 3), (2, 2), ((1, 1), (1, 1))),        # CycleGAN downsampling
    ((2, 14, 14, 8), 4, (4, 4), (2, 2), "SAME"),                 # conv VAE encoder
    ((2, 8, 8, 8), 4, (3, 3), (2, 2), "SAME"),                   # UNet downsampling
    ((2, 10, 11, 3), 2, (5, 3), (3, 2), ((2, 1), (0, 3))),      # rows no output reaches
    ((2, 7, 6, 3), 2, (2, 2), (2, 2), "VALID"),
    ((2, 9, 3), 4, (4,), (2,), ((1, 1),)),                       # 1-D
    ((1, 5, 4, 6, 3), 2, (3, 2, 3), (2, 2, 1), "SAME"),          # 3-D, mixed strides
]


@pytest.mark.parametrize("shape, features, kernel, strides, padding", STRIDED_CASES)
def test_strided_conv_equals_flax_forward_and_gradients(shape, features, kernel, strides,
                                                        padding):
    x = jax.random.normal(jax.random.key(0), shape)
    ours, theirs, variables = assert_layer_equals_flax(
        layers.Conv, nn.Conv, x, dict(features=features, kernel_size=kernel, strides=strides,
                                      padding=padding, bias_init=nn.initializers.normal(1.0)))
    # The point: the input gradient does not convolve a zero-inserted cotangent.
    hlo = jax.jit(jax.grad(lambda x: jnp.sum(ours.apply(variables, x) ** 2))).lower(
        x).compile().as_text()
    assert "lhs_dilate=" not in hlo
    if len(shape) == 4 and strides == (2, 2):  # while XLA's own gradient does
        hlo = jax.jit(jax.grad(lambda x: jnp.sum(theirs.apply(variables, x) ** 2))).lower(
            x).compile().as_text()
        assert "lhs_dilate=" in hlo


def test_unstrided_or_grouped_convs_are_lax_conv_itself():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
    for kw in (dict(strides=(1, 1)), dict(strides=(2, 2), feature_group_count=2),
               dict(strides=(2, 2), kernel_dilation=(2, 2)),
               dict(strides=(2, 2), input_dilation=(2, 2), padding=((1, 1), (1, 1)))):
        kw = dict(features=4, kernel_size=(3, 3)) | kw
        variables = nn.Conv(**kw).init(jax.random.key(1), x)
        f = lambda m, v=variables: jax.grad(lambda x: jnp.sum(m.apply(v, x) ** 2))(x)
        assert_close(f(layers.Conv(**kw)), f(nn.Conv(**kw)), rtol=0)


def test_subpixel_function_equals_lax_conv_transpose_without_inserted_zeros():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 16))
    w = jax.random.normal(jax.random.key(1), (4, 4, 16, 8))
    pads = ((2, 2), (2, 2))
    dn = ("NHWC", "HWIO", "NHWC")

    def loss(conv, x, w):
        return jnp.sum(jnp.sin(conv(x, w)))

    ours = lambda x, w: layers.conv_transpose_subpixel(x, w, (2, 2), pads)
    theirs = lambda x, w: lax.conv_transpose(x, w, (2, 2), pads, dimension_numbers=dn)
    assert_close(jax.jit(ours)(x, w), jax.jit(theirs)(x, w))
    assert_close(jax.jit(jax.grad(lambda x, w: loss(ours, x, w), argnums=(0, 1)))(x, w),
                 jax.jit(jax.grad(lambda x, w: loss(theirs, x, w), argnums=(0, 1)))(x, w))
    # The point of the rewrite: no convolution of the step dilates its input.
    step = jax.jit(jax.grad(lambda x, w: loss(ours, x, w), argnums=(0, 1)))
    hlo = step.lower(x, w).compile().as_text()
    assert "convolution(" in hlo and "lhs_dilate=" not in hlo


@pytest.mark.parametrize("ours, theirs", [(layers.ConvTranspose, nn.ConvTranspose),
                                          (layers.Conv, nn.Conv)])
def test_second_order_gradients_match(ours, theirs):
    # e.g. an R1 penalty differentiates an input gradient once more.
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    kw = dict(features=2, kernel_size=(4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))
    variables = theirs(**kw).init(jax.random.key(1), x)

    def penalty(module):
        def f(v):
            g = jax.grad(lambda x: jnp.sum(jnp.tanh(module.apply(v, x))))(x)
            return jnp.sum(g**2)
        return jax.jit(jax.grad(f))(variables)

    assert_close(penalty(ours(**kw)), penalty(theirs(**kw)))


def test_unsupported_options_use_flax_computation():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    for kw in (dict(transpose_kernel=True), dict(kernel_dilation=(2, 2)),
               dict(mask=jnp.tril(jnp.ones((3, 3, 3, 4)))), dict(padding="CIRCULAR")):
        kw = dict(features=4, kernel_size=(3, 3), strides=(2, 2)) | kw
        variables = nn.ConvTranspose(**kw).init(jax.random.key(1), x)
        assert_close(layers.ConvTranspose(**kw).apply(variables, x),
                     nn.ConvTranspose(**kw).apply(variables, x), rtol=0)


def nearest_x2(x):
    """×2 nearest upsampling of every spatial axis of ``[B, *spatial, C]`` (``jax.image``'s,
    independent of the code under test)."""
    return jax.image.resize(x, (x.shape[0], *(2 * n for n in x.shape[1:-1]), x.shape[-1]),
                            "nearest")


class RepeatThenConv(nn.Conv):
    """The computation :class:`layers.UpsampleConv` replaces: ×2 nearest, then flax's Conv."""

    def __call__(self, inputs):
        return super().__call__(nearest_x2(inputs))


# (input [B, *spatial, C], features, kernel, padding of the upsampled input)
UPSAMPLE_CASES = [
    ((2, 4, 4, 8), 8, (3, 3), "SAME"),       # the UNet's upsampling
    ((2, 5, 3, 3), 4, (5, 3), "SAME"),
    ((2, 4, 4, 2), 3, (2, 2), "SAME"),       # even kernel: unequal padding
    ((2, 4, 4, 2), 3, (3, 3), "VALID"),
    ((2, 4, 4, 2), 3, (3, 3), ((0, 2), (1, 1))),
    ((2, 7, 2), 3, (3,), "SAME"),            # 1-D
]


@pytest.mark.parametrize("shape, features, kernel, padding", UPSAMPLE_CASES)
def test_upsample_conv_equals_repeat_then_conv(shape, features, kernel, padding):
    x = jax.random.normal(jax.random.key(0), shape)
    nd = len(kernel)
    theirs = nn.Conv(features, kernel, padding=padding, bias_init=nn.initializers.normal(1.0))
    ours = layers.UpsampleConv(features, kernel, padding=padding,
                               bias_init=nn.initializers.normal(1.0))
    variables = jax.jit(ours.init)(jax.random.key(1), x)
    assert jax.tree.structure(variables) == jax.tree.structure(
        theirs.init(jax.random.key(1), nearest_x2(x)))
    assert variables["params"]["kernel"].shape == kernel + (shape[-1], features)

    def loss(f, v, x):
        return jnp.sum(jnp.sin(f(v, x)))

    f_ours = lambda v, x: ours.apply(v, x)
    f_theirs = lambda v, x: theirs.apply(v, nearest_x2(x))
    assert_close(jax.jit(f_ours)(variables, x), jax.jit(f_theirs)(variables, x))
    grads = lambda f: jax.jit(jax.grad(lambda v, x: loss(f, v, x), argnums=(0, 1)))(
        variables, x)
    assert_close(grads(f_ours), grads(f_theirs))
    if nd == 2:
        # The point: no convolution runs at the upsampled resolution, and none is dilated.
        hlo = jax.jit(jax.grad(lambda v, x: loss(f_ours, v, x), argnums=(0, 1))).lower(
            variables, x).compile().as_text()
        big = "x".join(str(2 * n) for n in shape[1:-1])
        convolutions = [line for line in hlo.splitlines() if " convolution(" in line]
        assert convolutions and not any("lhs_dilate=" in line for line in convolutions)
        assert not any(f",{big}," in line.split("=")[1].split("convolution(")[0]
                       for line in convolutions), big


def _with_flax_layers(monkeypatch):
    monkeypatch.setattr(layers, "ConvTranspose", nn.ConvTranspose)
    monkeypatch.setattr(layers, "Conv", nn.Conv)
    monkeypatch.setattr(layers, "UpsampleConv", RepeatThenConv)


MODELS = [
    (lambda: Generator(latent_dim=12, features=8, channels=3, image_size=32),
     (4, 12), dict(train=True, mutable=["batch_stats"])),
    (lambda: ConvDecoder(channels=(16, 8), image_shape=(28, 28, 1)), (4, 6), {}),
    (lambda: ResnetGenerator(num_blocks=1, features=4, out_channels=1), (2, 16, 16, 1), {}),
    (lambda: Discriminator(features=4, image_size=32), (4, 32, 32, 3),
     dict(train=True, mutable=["batch_stats"])),
    (lambda: ConvEncoder(channels=(4, 8), features=6), (2, 28, 28, 1), {}),
    (lambda: PatchDiscriminator(features=4, num_layers=2), (2, 16, 16, 1), {}),
]


def test_unet_with_upsample_conv_equals_its_repeat_then_conv_version(monkeypatch):
    """Same parameter tree, same outputs (float32; the layer's gradients are tested above)."""
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    t = jnp.array([3, 700])
    model = UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), num_groups=4)
    shapes = jax.eval_shape(lambda k: model.init(k, x, t, train=False), jax.random.key(1))
    # Random values everywhere: zero-initialised output layers would hide a difference.
    leaves, tree = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    variables = jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, a.shape, a.dtype)
                                          for k, a in zip(keys, leaves, strict=True)])
    ours = jax.jit(lambda v: model.apply(v, x, t, train=False))(variables)
    with monkeypatch.context() as m:
        m.setattr(layers, "UpsampleConv", RepeatThenConv)
        theirs_shapes = jax.eval_shape(lambda k: model.init(k, x, t, train=False),
                                       jax.random.key(1))
        theirs = jax.jit(lambda v: model.apply(v, x, t, train=False))(variables)
    assert jax.tree.structure(theirs_shapes) == tree
    assert [a.shape for a in jax.tree.leaves(theirs_shapes)] == [a.shape for a in leaves]
    assert jnp.max(jnp.abs(theirs)) > 0.1
    assert_close(ours, theirs)


@pytest.mark.parametrize("make, shape, kwargs", MODELS)
def test_models_equal_their_flax_layer_versions(make, shape, kwargs, monkeypatch):
    """Same parameter tree (checkpoints load) and, computed in float64 so that rounding cannot
    hide a difference, the same outputs and parameter gradients."""
    x = jax.random.normal(jax.random.key(0), shape)
    init_kw = {"train": False} if "train" in kwargs else {}

    def run():
        model = make()
        variables = jax.jit(lambda k: model.init(k, x, **init_kw))(jax.random.key(1))
        with jax.enable_x64(True):
            v64, x64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (variables, x))

            model64 = model.clone(dtype=jnp.float64) if hasattr(model, "dtype") else model

            def loss(params):
                out = model64.apply({**v64, "params": params}, x64, **kwargs)
                out = out[0] if isinstance(out, tuple) else out
                return jnp.sum(jnp.sin(3.0 * out)), out

            (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(v64["params"])
            out, grads = jax.device_get((out, grads))
        return variables, out, grads

    ours = run()
    with monkeypatch.context() as m:
        _with_flax_layers(m)
        theirs = run()
    assert jax.tree.structure(ours[0]) == jax.tree.structure(theirs[0])
    assert_close(ours[0], theirs[0], rtol=0)
    assert_close(ours[1], theirs[1], rtol=1e-10)
    assert_close(ours[2], theirs[2], rtol=1e-10)
