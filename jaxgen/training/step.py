"""One optimizer update inside a per-device step body, shared by every model family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax
from flax import struct

from jaxgen.training.keys import AXIS
from jaxgen.training.state import TrainState


@struct.dataclass
class LossOutput:
    """What a loss function returns to :func:`gradient_update`.

    Attributes:
      loss: scalar, this device's mean loss (the value differentiated).
      metrics: scalar metrics (this device's means), averaged over devices by the update.
      model_state: the model's updated mutable collections (e.g. ``{"batch_stats": ...}``,
        already synchronised across devices by the layers' ``axis_name``), stored in the new
        state; None leaves the state's as they are.
      outputs: anything the caller needs after the update (e.g. generated images); returned
        as it is, per device.
    """

    loss: jax.Array
    metrics: Mapping[str, jax.Array] = struct.field(default_factory=dict)
    model_state: Any = None
    outputs: Any = None


def learning_rate(opt_state: Any) -> jax.Array | None:
    """The learning rate of the last update, when the optimizer records it
    (:func:`jaxgen.training.optim.make_optimizer` does, through ``optax.inject_hyperparams``)."""
    found = [v for path, v in optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate")
             if any(getattr(k, "name", None) == "hyperparams" for k in path)]
    return found[0] if found else None


def _device_copy(tree: Any, axis_name: str) -> Any:
    """`tree` cast to device-varying under shard_map's replication checking; as it is under
    pmap or vmap, whose mapped values are per device already (``pcast`` exists only inside
    shard_map)."""
    try:
        return jax.lax.pcast(tree, axis_name, to="varying")
    except ValueError:
        return tree


def gradient_update(
    state: TrainState, loss_fn: Callable[[Any], LossOutput], *, name: str = "",
    axis_name: str = AXIS,
) -> tuple[TrainState, dict[str, jax.Array], Any]:
    """Differentiate ``loss_fn`` on this device's batch shard, average over devices, update.

    Must run inside a function mapped over `axis_name` (``DataParallel.compile``).

    Args:
      state: the player being updated.
      loss_fn: ``params -> LossOutput``.
      name: the player's name; when given, the added metrics are ``<name>_grad_norm`` and
        ``<name>_learning_rate``, else ``grad_norm`` and ``learning_rate``.
      axis_name: the mapped axis the gradients and metrics are averaged over.

    Returns:
      ``(new_state, metrics, outputs)``: gradients and metrics are ``pmean``-ed over
      `axis_name`, so with equal per-device batches they equal one device's values on the
      global batch. ``metrics`` adds the global norm of the averaged gradients and the learning
      rate of this update.
    """
    def value(params):
        out = loss_fn(params)
        return out.loss, out

    # Differentiate with respect to this device's copy of the parameters (cast to
    # device-varying): the gradient is then this device's, under shard_map's replication
    # checking as under pmap, and pmean averages it. (The gradient with respect to the
    # replicated parameters themselves would come out already summed over the devices.)
    params = _device_copy(state.params, axis_name)
    (_, out), grads = jax.value_and_grad(value, has_aux=True)(params)
    grads = jax.lax.pmean(grads, axis_name)
    metrics = dict(jax.lax.pmean(dict(out.metrics), axis_name))
    new = state.apply_gradients(grads=grads)
    if out.model_state is not None:
        new = new.replace(model_state=out.model_state)
    prefix = f"{name}_" if name else ""
    metrics[f"{prefix}grad_norm"] = optax.tree.norm(grads)
    lr = learning_rate(new.opt_state)
    if lr is not None:
        metrics[f"{prefix}learning_rate"] = lr
    return new, metrics, out.outputs
