"""The config boundary: every key has one owner, and a key nobody takes is an error."""

import dataclasses

import ml_collections
import pytest

from experiments import settings
from jaxgen.training.config import TrainConfig
from jaxgen.validation import ConfigError


@dataclasses.dataclass(frozen=True)
class ClaimsTrain:
    batch_size: int = 4  # also declared by TrainConfig


@dataclasses.dataclass(frozen=True)
class FamilyConfig:
    train: ClaimsTrain = ClaimsTrain()


def test_a_key_declared_by_two_owners_is_an_error():
    node = ml_collections.ConfigDict({"train": {"batch_size": 8}})
    used = {}
    settings.build(TrainConfig, node["train"], used, "train.")
    assert used["train.batch_size"] == "TrainConfig"
    with pytest.raises(ConfigError, match="train.batch_size is declared by both TrainConfig "
                                          "and FamilyConfig"):
        settings.build(FamilyConfig, node, used)


@pytest.mark.parametrize("name", ["vae_mlp", "ddpm_fmnist", "dcgan_fmnist", "cyclegan_fmnist",
                                  "classifier_fmnist"])
def test_every_shipped_config_gives_each_key_one_owner(name):
    import importlib

    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    run, family_config = settings.from_config_dict(config)
    assert run.family == config.family and family_config is not None
