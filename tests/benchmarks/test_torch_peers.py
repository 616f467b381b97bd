"""The PyTorch peers of benchmarks/cpu_vs_pytorch.py have jaxgen's parameter counts and run."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.torch_peers import cyclegan, dcgan, num_params, unet, vae  # noqa: E402
from experiments import cyclegan as cyclegan_experiment  # noqa: E402
from experiments import diffusion as diffusion_experiment  # noqa: E402
from experiments import gan as gan_experiment  # noqa: E402
from jaxgen.models.autoencoders import make_autoencoder  # noqa: E402


def config(name):
    return importlib.import_module(f"experiments.configs.{name}").get_config()


def count(tree) -> int:
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(tree))


def shapes(fn, *args):
    return jax.eval_shape(fn, jax.random.key(0), *args)["params"]


def test_dcgan_counts():
    c = config("dcgan_fmnist")
    gen, disc = gan_experiment.make_models(c, axis_name=None)
    size, channels = c.data.image_size, c.data.image_shape[-1]
    g = shapes(lambda k: gen.init(k, jnp.zeros((2, c.model.latent_dim)), train=False))
    d = shapes(lambda k: disc.init(k, jnp.zeros((2, size, size, channels)), train=False))
    peer_g, peer_d = dcgan.make_models(c)
    assert (num_params(peer_g), num_params(peer_d)) == (count(g), count(d)) == (369_600, 166_784)


def test_cyclegan_counts():
    c = config("cyclegan_fmnist")
    gen, disc = cyclegan_experiment.make_models(c)
    x = jnp.zeros((1, c.data.crop_size, c.data.crop_size, c.data.channels))
    g, d = shapes(lambda k: gen.init(k, x)), shapes(lambda k: disc.init(k, x))
    peer_g, peer_d = cyclegan.make_models(c)
    assert (num_params(peer_g), num_params(peer_d)) == (count(g), count(d)) == (269_377, 42_353)


def test_unet_count():
    c = config("ddpm_fmnist")
    model = diffusion_experiment.make_model(c)
    x = jnp.zeros((1, c.data.image_size, c.data.image_size, c.data.image_shape[-1]))
    p = shapes(lambda k: model.init(k, x, jnp.zeros((1,), jnp.int32), train=False))
    assert num_params(unet.make_model(c)) == count(p) == 1_112_801


@pytest.mark.parametrize("name, want", [("vae_conv", 258_025), ("vae_mlp", 652_824)])
def test_vae_counts(name, want):
    c = config(name)
    m = c.model
    model = make_autoencoder(architecture=m.architecture, image_shape=tuple(c.data.image_shape),
                             latent_dim=m.latent_dim, variational=True, hidden=tuple(m.hidden),
                             channels=tuple(m.channels), init=m.init)
    x = jnp.zeros((1, *c.data.image_shape))
    p = shapes(lambda k: model.init(k, x, jax.random.key(1)))
    make_peer = vae.make_conv_peer if m.architecture == "conv" else vae.make_mlp_peer
    assert num_params(make_peer(c, 2).models["vae"]) == count(p) == want


def test_every_peer_steps_and_learns_something():
    torch.manual_seed(0)
    peers = [dcgan.make_peer(config("dcgan_fmnist"), 4),
             dcgan.make_peer(config("dcgan_fmnist"), 4, reuse_fakes=True),
             cyclegan.make_peer(config("cyclegan_fmnist"), 2),
             unet.make_peer(config("ddpm_fmnist"), 2),
             vae.make_conv_peer(config("vae_conv"), 4),
             vae.make_mlp_peer(config("vae_mlp"), 4)]
    for peer in peers:
        before = [p.detach().clone() for m in peer.models.values() for p in m.parameters()]
        peer.step()
        peer.step()
        after = [p.detach() for m in peer.models.values() for p in m.parameters()]
        assert all(torch.isfinite(p).all() for p in after)
        assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
