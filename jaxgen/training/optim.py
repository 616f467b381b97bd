"""The optimizer and its learning-rate schedule, built in one place for every family.

Adam (Kingma & Ba 2014, arXiv:1412.6980) on a schedule of the run's step count: an optional
linear warmup from 0, then a constant rate (``"constant"``) or a constant rate followed by a
linear decay to 0 over the last ``decay_fraction`` of the run (``"linear_decay"``, CycleGAN's:
n epochs constant, then n epochs decaying). Gradients can be clipped by their global norm.
The rate of each update is recorded in the optimizer state (``optax.inject_hyperparams``), so
every player's ``learning_rate`` is logged as it was applied.
"""

from __future__ import annotations

import dataclasses

import optax

from jaxgen.validation import ConfigError, check_choice, check_number

SCHEDULES = ("constant", "linear_decay")


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
        check_number("optimizer.learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_number("optimizer.b1", self.b1, low=0.0, high=1.0, high_open=True)
        check_number("optimizer.b2", self.b2, low=0.0, high=1.0, high_open=True)
        check_number("optimizer.grad_clip_norm", self.grad_clip_norm, low=0.0)
        check_number("optimizer.warmup_steps", self.warmup_steps, low=0, integer=True)
        check_choice("optimizer.schedule", self.schedule, SCHEDULES)
        check_number("optimizer.decay_fraction", self.decay_fraction, low=0.0, high=1.0,
                     low_open=True)
        check_number("optimizer.ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)


def learning_rate_schedule(config: OptimizerConfig, num_steps: int) -> optax.Schedule:
    """The learning rate as a function of the update count, for a run of `num_steps` updates.

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
                f"optimizer.warmup_steps={config.warmup_steps} overlaps the decay phase, which "
                f"starts at step {decay_start} of {num_steps}; lower warmup_steps or "
                "decay_fraction.")
        pieces.append(optax.linear_schedule(lr, 0.0, decay_steps))
        boundaries.append(decay_start)
    return optax.join_schedules(pieces, boundaries) if boundaries else pieces[0]


def make_optimizer(config: OptimizerConfig, num_steps: int) -> optax.GradientTransformation:
    """Adam (``b1``, ``b2``) on :func:`learning_rate_schedule` with optional global-norm
    clipping; the applied rate is kept in the state under ``"learning_rate"``."""
    schedule = learning_rate_schedule(config, num_steps)
    adam = optax.inject_hyperparams(optax.adam)(learning_rate=schedule, b1=config.b1,
                                                b2=config.b2)
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
    return adam
