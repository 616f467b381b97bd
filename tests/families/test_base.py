"""The helpers every family shares (jaxgen.families.base)."""

import dataclasses
import os
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments import runner, settings
from experiments.configs import base
from jaxgen import families
from jaxgen.families.base import (
    EvalPass,
    Family,
    SamplingConfig,
    TranslateConfig,
    player_optimizer,
)
from jaxgen.training import TrainState
from jaxgen.training.step import LossOutput, gradient_update
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


@dataclasses.dataclass(frozen=True)
class MeanImageConfig:  # no `sampling` section
    scale: float = 1.0


class MeanImage(Family):
    """A minimal family that generates and has no ``sampling`` settings: it learns the mean
    image and samples it plus scaled noise."""

    name, Config, input_range, samplers = "mean_image", MeanImageConfig, "unit", ("prior",)

    def init(self, key, tx, *, ema_decay=0.0):
        return TrainState.create(apply_fn=None, params={"mean": jnp.zeros(self.image_shape)},
                                 tx=tx, ema_decay=ema_decay)

    def _errors(self, params, batch):
        return jnp.mean((batch["image"] - params["mean"]) ** 2, axis=(1, 2, 3))

    def train_body(self, state, batch, key):
        def loss_fn(params):
            loss = self._errors(params, batch).mean()
            return LossOutput(loss=loss, metrics={"loss": loss})

        state, metrics, _ = gradient_update(state, loss_fn)
        return state, metrics

    def eval_passes(self):
        body = lambda state, batch, key: {"squared_error": self._errors(state.params, batch)}  # noqa: E731
        return {"test": EvalPass(body, ("squared_error",))}

    def sample_inputs(self, key, num):
        return {"noise": jax.random.normal(key, (num, *self.image_shape))}

    def sample_body(self, sampler):
        def sample(state, batch, key):
            return state.params["mean"] + 0.01 * self.config.scale * batch["noise"]

        return sample


def test_a_family_without_sampling_settings_samples_with_the_defaults(tmp_path, monkeypatch):
    """The runner reads the declared ``Family.sampling_config`` (the defaults where the config
    has no ``sampling`` section), not ``config.sampling`` (which was an AttributeError on
    None); and a ``sampling`` section of the wrong type is a one-line error."""
    monkeypatch.setitem(families.REGISTRY, MeanImage.name, MeanImage)
    c = base.get_image_config()
    base.make_tiny(c)
    c.family = "mean_image"
    run_settings, family_config = settings.from_config_dict(ml_collections.ConfigDict(c))
    summary = runner.run(run_settings, family_config, str(tmp_path))  # grids use the sampler
    assert summary["step"] == 3
    assert any(g.startswith("samples_prior") for g in os.listdir(tmp_path / "images"))
    out = runner.run(run_settings, family_config, str(tmp_path), "sample")
    assert np.load(out["npz"])["images"].shape == (SamplingConfig().num_samples, 16, 16, 1)
    family = MeanImage(family_config, image_shape=(16, 16, 1))
    assert family.sampling_config == SamplingConfig()
    assert family.translate_config == TranslateConfig()

    family.config = types.SimpleNamespace(sampling={"num_samples": 3})
    with pytest.raises(TypeError, match="runner reads it as a SamplingConfig") as error:
        family.sampling_config  # noqa: B018
    assert "\n" not in str(error.value)
