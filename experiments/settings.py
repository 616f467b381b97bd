"""The experiments boundary: an ``ml_collections`` config → the typed, frozen settings.

Everything below ``experiments/`` takes these dataclasses, never a ``ConfigDict``. A config's
top-level sections are shared out: ``seed``, ``data``, ``optimizer``, ``train`` and ``eval``
build the run's :class:`RunSettings`, and every section (``train`` and ``eval`` included) also
feeds the family's own config dataclass, each taking the keys it declares. Each key has one
owner (a key declared by two dataclasses is an error), a key that nobody takes is an error,
and every value is validated as the dataclasses are built, before any data is read or
anything compiled.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import ml_collections

from jaxgen import families
from jaxgen.data.datasets import KINDS
from jaxgen.training.config import EvalConfig, TrainConfig
from jaxgen.training.optim import OptimizerConfig
from jaxgen.validation import ConfigError, check_number


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What the runner needs besides the family's own config."""

    family: str
    seed: int
    data: Any  # ImageDataConfig or UnpairedDataConfig, as the family's data_kind says
    optimizer: OptimizerConfig
    train: TrainConfig
    eval: EvalConfig

    def __post_init__(self):
        # NumPy's generators take seeds in [0, 2**32) and jax.random.key a 32-bit one too.
        check_number("seed", self.seed, low=0, high=2**32 - 1, integer=True)


def _leaves(node, prefix: str = "") -> set[str]:
    out = set()
    for k, v in node.items():
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            out |= _leaves(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


def _coerce(value, annotation, key: str):
    origin = typing.get_origin(annotation)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (typing.Union, types.UnionType) and value is None:
        return None
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be True or False.")
    return value


def build(cls: type, node, used: dict[str, str], prefix: str = "", owner: str = ""):
    """Instantiate dataclass `cls` from the matching keys of `node`; record in `used` which
    dataclass took each key.

    Raises:
      ConfigError: a key is declared by two dataclasses (each key has one owner, so that no
        setting is read twice with two meanings).
    """
    hints = typing.get_type_hints(cls)
    owner = owner or cls.__name__
    kwargs = {}
    for field in dataclasses.fields(cls):
        key, annotation = f"{prefix}{field.name}", hints[field.name]
        if dataclasses.is_dataclass(annotation):
            child = node.get(field.name) if node is not None else None
            kwargs[field.name] = build(annotation, child, used, key + ".", owner)
            continue
        if key in used:
            raise ConfigError(f"{key} is declared by both {used[key]} and {owner}; a setting "
                              "must have one owner (remove it from one of them).")
        used[key] = owner
        if node is not None and field.name in node:
            kwargs[field.name] = _coerce(node[field.name], annotation, key)
    return cls(**kwargs)


def from_config_dict(config: ml_collections.ConfigDict) -> tuple[RunSettings, Any]:
    """The run's settings and the family's config from an experiment config.

    Raises:
      ConfigError: a value out of range, an unknown family, or a key no one uses.
    """
    name = config.get("family")
    if name not in families.names():
        raise ConfigError(f"family={name!r} is not a registered family; choose one of "
                          f"{', '.join(families.names())}.")
    family = families.get(name)
    used = {"family": "RunSettings", "seed": "RunSettings"}
    data_cls = KINDS[family.data_kind][0]
    run = RunSettings(
        family=name, seed=config.seed, data=build(data_cls, config.get("data"), used, "data."),
        optimizer=build(OptimizerConfig, config.get("optimizer"), used, "optimizer."),
        train=build(TrainConfig, config.get("train"), used, "train."),
        eval=build(EvalConfig, config.get("eval"), used, "eval."),
    )
    family_config = build(family.Config, config, used, owner=family.Config.__name__)
    unused = sorted(_leaves(config) - used.keys())
    if unused:
        raise ConfigError(f"config keys not used by the {name} family: {', '.join(unused)}; "
                          "remove them or check their spelling and section.")
    return run, family_config


def as_dict(settings: RunSettings, family_config) -> dict:
    """Both as one nested dict of plain values (for summary.json and drift checks)."""
    out = dataclasses.asdict(settings)
    for k, v in dataclasses.asdict(family_config).items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out
