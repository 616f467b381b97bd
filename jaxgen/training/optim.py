"""The optimizer and its learning-rate schedule, built in one place for every family.

Adam (Kingma & Ba 2014, arXiv:1412.6980) on a schedule of the run's step count: an optional
linear warmup from 0, then a constant rate (``"constant"``) or a constant rate followed by a
linear decay to 0 over the last ``decay_fraction`` of the run (``"linear_decay"``, CycleGAN's:
n epochs constant, then n epochs decaying). Gradients can be clipped by their global norm.
The rate of each update is recorded in the optimizer state (``optax.inject_hyperparams``), so
every player's ``learning_rate`` is logged as it was applied.

The schedule counts the run's *steps*: a player updated ``k`` times per step (a GAN's
discriminator, ``loss.d_steps``) evaluates it at ``update_count // k``, so its rate at step ``s``
is ``schedule(s)`` whatever ``k`` is. A player may depart from the run's ``optimizer`` section
through its own :class:`OptimizerOverrides` (the two-player families' ``d_optimizer`` section).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import optax

from jaxgen.validation import ConfigError, check_choice, check_number

SCHEDULES = ("constant", "linear_decay")
RANGES = {  # check_number's arguments for each numeric setting
    "learning_rate": dict(low=0.0, low_open=True),
    "b1": dict(low=0.0, high=1.0, high_open=True),
    "b2": dict(low=0.0, high=1.0, high_open=True),
    "grad_clip_norm": dict(low=0.0),
    "warmup_steps": dict(low=0, integer=True),
    "decay_fraction": dict(low=0.0, high=1.0, low_open=True),
    "ema_decay": dict(low=0.0, high=1.0, high_open=True),
}


def check_settings(section: str, values: Mapping[str, Any]) -> None:
    """Validate the optimizer settings in `values` (any subset of :class:`OptimizerConfig`'s
    fields), naming each as ``<section>.<field>`` in the error.

    Raises:
      ConfigError: a value out of its range.
    """
    for name, value in values.items():
        if name == "schedule":
            check_choice(f"{section}.schedule", value, SCHEDULES)
        else:
            check_number(f"{section}.{name}", value, **RANGES[name])


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam and its schedule. ``ema_decay`` > 0 keeps an EMA of the parameters."""

    learning_rate: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    grad_clip_norm: float = 0.0  # 0: no clipping
    warmup_steps: int = 0
    schedule: str = "constant"
    decay_fraction: float = 0.5
    ema_decay: float = 0.0

    def __post_init__(self):
        check_settings("optimizer", dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class OptimizerOverrides:
    """One player's own optimizer settings: each field that is set replaces the run's
    :class:`OptimizerConfig` value for that player; None keeps the run's. (No ``ema_decay``:
    only the player that evaluates and samples keeps an EMA, with the run's.)

    The values are validated by :meth:`check`, which the config holding this section calls
    with the section's name.
    """

    learning_rate: float | None = None
    b1: float | None = None
    b2: float | None = None
    grad_clip_norm: float | None = None
    warmup_steps: int | None = None
    schedule: str | None = None
    decay_fraction: float | None = None

    def set_values(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def check(self, section: str) -> None:
        """Raise ConfigError for a set value out of range, named ``<section>.<field>``."""
        check_settings(section, self.set_values())

    def apply(self, config: OptimizerConfig) -> OptimizerConfig:
        """`config` with this player's settings in place of the run's."""
        return dataclasses.replace(config, **self.set_values())


def learning_rate_schedule(config: OptimizerConfig, num_steps: int, *,
                           section: str = "optimizer") -> optax.Schedule:
    """The learning rate as a function of the run's step, for a run of `num_steps` steps.

    `section` names the settings in errors (a player's own: ``"d_optimizer"``).

    Raises:
      ConfigError: when the warmup overlaps the decay phase.
    """
    lr = config.learning_rate
    pieces, boundaries = [], []
    if config.warmup_steps > 0:
        pieces.append(optax.linear_schedule(0.0, lr, config.warmup_steps))
        boundaries.append(config.warmup_steps)
    pieces.append(optax.constant_schedule(lr))
    if config.schedule == "linear_decay" and num_steps > 0:  # 0: not training
        decay_steps = max(1, round(config.decay_fraction * num_steps))
        decay_start = num_steps - decay_steps
        if decay_start < config.warmup_steps:
            raise ConfigError(
                f"{section}.warmup_steps={config.warmup_steps} overlaps the decay phase, which "
                f"starts at step {decay_start} of {num_steps}; lower warmup_steps or "
                "decay_fraction.")
        pieces.append(optax.linear_schedule(lr, 0.0, decay_steps))
        boundaries.append(decay_start)
    return optax.join_schedules(pieces, boundaries) if boundaries else pieces[0]


def make_optimizer(config: OptimizerConfig, num_steps: int, *, updates_per_step: int = 1,
                   section: str = "optimizer") -> optax.GradientTransformation:
    """Adam (``b1``, ``b2``) on :func:`learning_rate_schedule` with optional global-norm
    clipping; the applied rate is kept in the state under ``"learning_rate"``.

    Args:
      config: the player's optimizer settings.
      num_steps: the run's length in steps (0: not training; no decay).
      updates_per_step: how many updates the player makes per step (a GAN's discriminator:
        ``loss.d_steps``). The schedule is evaluated at ``update_count // updates_per_step``,
        the run's step, so that every update of step ``s`` uses ``schedule(s)``.
      section: where `config` comes from, to name its settings in errors.
    """
    check_number("updates_per_step", updates_per_step, low=1, integer=True)
    per_step = learning_rate_schedule(config, num_steps, section=section)
    schedule = (per_step if updates_per_step == 1
                else lambda count: per_step(count // updates_per_step))
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=schedule, b1=config.b1,
                                                b2=config.b2)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
    return adam
