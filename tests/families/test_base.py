"""The helpers every family shares (jaxgen.families.base)."""

import flax.linen as nn
import jax
import optax
import pytest

from experiments import settings
from jaxgen import families
from jaxgen.families.base import player_optimizer
from tests.experiments.helpers import load_config


@pytest.mark.parametrize("name", ["gan", "cyclegan", "diffusion", "classifier"])
def test_init_traces_each_network_once(name, monkeypatch):
    """A second init, even of a new family object, reuses the compiled inits (the bug: a
    fresh ``jax.jit(lambda ...)`` per call traced and compiled every network again)."""
    traced = []
    module_init = nn.Module.init

    def counting_init(self, *args, **kwargs):
        traced.append(type(self).__name__)
        return module_init(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "init", counting_init)
    _, config = settings.from_config_dict(load_config(f"tiny/{name}", {}))

    def init(seed):
        family = families.get(name)(config, image_shape=(16, 16, 1), num_classes=10)
        return family.init(jax.random.key(seed), optax.sgd(0.1))

    first = init(0)
    before = len(traced)
    second = init(1)
    assert len(traced) == before, traced[before:]
    pairs = list(zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True))
    assert all(a.shape == b.shape and a.dtype == b.dtype for a, b in pairs)
    assert any((a != b).any() for a, b in pairs)  # the key is an argument, not a constant


def test_player_optimizer_reads_a_mapping_or_shares_one():
    shared, d = optax.sgd(0.1), optax.adam(1e-3)
    assert player_optimizer(shared, "discriminator") is shared
    assert player_optimizer({"generator": shared, "discriminator": d}, "discriminator") is d
