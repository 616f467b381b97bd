"""The PyTorch peers of benchmarks/cpu_vs_pytorch.py have jaxgen's parameter counts and run."""

import importlib

import jax
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")

from benchmarks.torch_peers import cyclegan, dcgan, num_params, unet, vae  # noqa: E402
from experiments import settings  # noqa: E402
from jaxgen import families  # noqa: E402
from jaxgen.data.datasets import KINDS  # noqa: E402


def config(name):
    return importlib.import_module(f"experiments.configs.{name}").get_config()


def count(tree) -> int:
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(tree))


def initial_state(name):
    """The shapes of the family's initial state for config `name`, built as the runner
    builds it (typed settings, the data's image shape, the family's own ``init``)."""
    run, family_config = settings.from_config_dict(config(name))
    cls = families.get(run.family)
    data = KINDS[cls.data_kind][1](run.data, input_range=cls.input_range, seed=run.seed)
    family = cls(family_config, image_shape=data.image_shape, num_classes=data.num_classes)
    return jax.eval_shape(lambda: family.init(jax.random.key(0), optax.adam(1e-3)))


def test_dcgan_counts():
    state = initial_state("dcgan_fmnist")
    g, d = state.generator.params, state.discriminator.params
    peer_g, peer_d = dcgan.make_models(config("dcgan_fmnist"))
    assert (num_params(peer_g), num_params(peer_d)) == (count(g), count(d)) == (369_600, 166_784)


def test_cyclegan_counts():
    state = initial_state("cyclegan_fmnist")
    # One network of each kind (the players hold G and F, D_X and D_Y).
    g, d = state.generator.params["G"], state.discriminator.params["D_X"]
    peer_g, peer_d = cyclegan.make_models(config("cyclegan_fmnist"))
    assert (num_params(peer_g), num_params(peer_d)) == (count(g), count(d)) == (269_377, 42_353)


def test_unet_count():
    p = initial_state("ddpm_fmnist").params
    assert num_params(unet.make_model(config("ddpm_fmnist"))) == count(p) == 1_112_801


@pytest.mark.parametrize("name, want", [("vae_conv", 258_025), ("vae_mlp", 652_824)])
def test_vae_counts(name, want):
    c = config(name)
    p = initial_state(name).params
    make_peer = vae.make_conv_peer if c.model.architecture == "conv" else vae.make_mlp_peer
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
