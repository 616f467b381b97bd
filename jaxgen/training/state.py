"""The one training state shared by every model family."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state


class TrainState(train_state.TrainState):
    """Step, parameters and optimizer state, plus the model's mutable state and an EMA.

    Attributes:
      step: number of updates applied so far (int32 scalar).
      params: the model parameters.
      opt_state: the optax optimizer state.
      model_state: the model's mutable collections other than ``params`` (e.g.
        ``{"batch_stats": ...}`` for BatchNorm), an empty dict for models without them.
      ema_params: exponential moving average of ``params``, or None when disabled.
      ema_decay: the EMA decay (static; ignored when ``ema_params`` is None).
    """

    model_state: Any = struct.field(default_factory=dict)
    ema_params: Any = None
    ema_decay: float = struct.field(pytree_node=False, default=0.0)

    @classmethod
    def create(cls, *, apply_fn, params, tx: optax.GradientTransformation, ema_decay: float = 0.0,
               model_state: Any = None, **kwargs) -> TrainState:
        """Create a state at step 0; keeps an EMA copy of the params when ``ema_decay`` > 0."""
        ema_params = jax.tree.map(lambda p: p, params) if ema_decay > 0 else None
        state = super().create(
            apply_fn=apply_fn, params=params, tx=tx, ema_params=ema_params, ema_decay=ema_decay,
            model_state=dict(model_state or {}), **kwargs,
        )
        # An array, as a restored checkpoint holds it: the compiled step sees one signature.
        return state.replace(step=jnp.zeros((), jnp.int32))

    def variables(self, params: Any = None) -> dict[str, Any]:
        """The variables ``apply_fn`` takes: ``{"params": params, **model_state}``.

        Args:
          params: the parameters to apply with (e.g. the ones being differentiated, or
            ``eval_params``); None: the state's own.
        """
        return {"params": self.params if params is None else params, **self.model_state}

    @property
    def eval_params(self) -> Any:
        """The parameters to evaluate and sample with: the EMA when kept, else ``params``."""
        return self.ema_params if self.ema_params is not None else self.params

    def apply_gradients(self, *, grads, **kwargs) -> TrainState:
        """Apply one optimizer update, and update the EMA parameters if present:
        ``ema ← decay · ema + (1 − decay) · params`` with the updated params."""
        new = super().apply_gradients(grads=grads, **kwargs)
        if self.ema_params is None:
            return new
        ema = optax.incremental_update(new.params, self.ema_params, 1.0 - self.ema_decay)
        return new.replace(ema_params=ema)


class TwoPlayerState(struct.PyTreeNode):
    """The state of a two-player game (GANs, CycleGAN): one :class:`TrainState` per player.

    Each player has its own parameters, optimizer and (optional) model state and EMA; a
    player may hold several networks (CycleGAN's ``generator`` holds G and F, updated by one
    optimizer as in the paper's reference code).

    Attributes:
      step: number of training steps taken (each may update a player several times); the step
        key is derived from it.
      generator: the generator player's state.
      discriminator: the discriminator player's state.
      extras: any further state the step carries, e.g. CycleGAN's image history pools.
    """

    step: jax.Array
    generator: TrainState
    discriminator: TrainState
    extras: Any = None

    @classmethod
    def create(cls, *, generator: TrainState, discriminator: TrainState,
               extras: Any = None) -> TwoPlayerState:
        return cls(step=jnp.zeros((), jnp.int32), generator=generator,
                   discriminator=discriminator, extras=extras)
