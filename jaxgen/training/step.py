"""One optimizer update inside a per-device step body, shared by every model family."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxgen.training.keys import AXIS
from jaxgen.training.state import TrainState


def gradient_update(
    state: TrainState, loss_fn: Callable[[Any], tuple[jax.Array, dict]], *, axis_name: str = AXIS
) -> tuple[TrainState, dict[str, jax.Array], Any]:
    """Differentiate ``loss_fn`` on this device's batch shard, average over devices, update.

    Must run inside a function mapped over `axis_name` (``DataParallel.compile``).

    Args:
      state: the player being updated.
      loss_fn: ``params -> (loss, aux)``; ``loss`` is this device's mean loss, ``aux`` a dict of
        scalar metrics (device means) plus two optional reserved keys: ``"batch_stats"``, the
        updated BatchNorm statistics (already synchronised across devices by the norm's
        ``axis_name``), stored in the new state; and ``"outputs"``, anything the caller needs
        afterwards (e.g. generated images), returned as it is.

    Returns:
      ``(new_state, metrics, outputs)``: gradients and metrics are ``pmean``-ed over
      `axis_name`, so with equal per-device batches they equal one device's values on the
      global batch; ``outputs`` is None when ``aux`` has none.
    """
    (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    aux = dict(aux)
    batch_stats = aux.pop("batch_stats", None)
    outputs = aux.pop("outputs", None)
    grads = jax.lax.pmean(grads, axis_name)
    metrics = jax.lax.pmean(aux, axis_name)
    new = state.apply_gradients(grads=grads)
    if batch_stats is not None:
        new = new.replace(batch_stats=batch_stats)
    return new, metrics, outputs
