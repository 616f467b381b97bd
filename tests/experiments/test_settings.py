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


def test_a_setting_added_later_reads_as_the_value_older_runs_had():
    """A config.json written before ``model.dtype`` / ``model.class_conditional`` existed
    holds float32 and unconditional: the same settings today are no difference, others are."""
    from experiments.workdir import config_differences

    saved = {"family": "gan", "model": {"width": 8}}
    same = {"family": "gan", "model": {"width": 8, "dtype": "float32",
                                       "class_conditional": False}}
    assert config_differences(saved, same) == []
    other = {"family": "gan", "model": {"width": 8, "dtype": "bfloat16",
                                        "class_conditional": True}}
    assert config_differences(saved, other) == [
        "model.class_conditional: False → True", "model.dtype: 'float32' → 'bfloat16'"]
    # A key missing from the record is still a difference.
    assert config_differences({"model": {"width": 8, "depth": 2}}, {"model": {"width": 8}}) == [
        "model.depth: 2 → None"]
