"""Checks of the class labels that the class-conditional models take.

Every conditional model in :mod:`jaxgen.models` has a ``num_classes`` attribute (0, the
default, means unconditional: the module is exactly the unconditional one) and takes labels
``y: int [B]``. :func:`check_labels` gives every model the same errors for a missing, extra or
malformed label array.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_labels"]


def check_labels(y: Any, *, num_classes: int, batch_shape: tuple[int, ...], owner: str,
                 null_class: bool = False, broadcast: bool = False) -> jax.Array | None:
    """Validate class labels against a model's ``num_classes``; returns them as an array.

    Args:
      y: the labels the caller passed (None when not given).
      num_classes: the model's ``num_classes``; 0 means the model is unconditional, and then
        ``y`` must be None.
      batch_shape: the leading shape the labels must have (``(B,)``).
      owner: the model's name, for the messages.
      null_class: whether the label ``num_classes`` (the null class ∅ of classifier-free
        guidance) is valid too, i.e. labels lie in ``[0, num_classes]`` rather than
        ``[0, num_classes)``.
      broadcast: accept labels that broadcast to ``batch_shape`` (e.g. ``[B]`` against
        ``[K, B]``) and return them broadcast.

    Returns:
      None for an unconditional model; else the labels, an integer array of ``batch_shape``.

    Raises:
      ValueError: labels missing for a conditional model, given to an unconditional one, of
        the wrong shape, or (when not traced, e.g. outside ``jit``) out of range.
      TypeError: labels that are not integers.
    """
    if num_classes < 0:
        raise ValueError(f"{owner} num_classes must be >= 0 (0: unconditional), got "
                         f"{num_classes}.")
    high = num_classes + 1 if null_class else num_classes
    valid = f"[0, {high - 1}]"
    if num_classes == 0:
        if y is not None:
            raise ValueError(
                f"{owner} is unconditional (num_classes=0) but was given labels y; build it "
                f"with num_classes > 0 to condition on classes, or leave y out.")
        return None
    if y is None:
        hint = (f"; {num_classes} is the null class ∅ (unconditional, for classifier-free "
                f"guidance)" if null_class else "")
        raise ValueError(
            f"{owner} is class-conditional (num_classes={num_classes}): pass labels y, "
            f"integers of shape {list(batch_shape)} in {valid}{hint}.")
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"{owner} labels y must be integers, got {y.dtype}.")
    shape_ok = tuple(y.shape) == tuple(batch_shape)
    if broadcast and not shape_ok and len(y.shape) <= len(batch_shape):
        try:
            shape_ok = np.broadcast_shapes(y.shape, batch_shape) == tuple(batch_shape)
        except ValueError:
            shape_ok = False
    if not shape_ok:
        raise ValueError(
            f"{owner} labels y must have shape {list(batch_shape)} (one per example), got "
            f"{list(y.shape)}.")
    if not isinstance(y, jax.core.Tracer):  # values are known: check the range now
        values = np.asarray(y)
        if values.size and (values.min() < 0 or values.max() >= high):
            raise ValueError(
                f"{owner} labels y must lie in {valid} (num_classes={num_classes}), got "
                f"values from {values.min()} to {values.max()}.")
    return jnp.broadcast_to(y, batch_shape) if broadcast else y
