"""PRNG key discipline: one key per step, split into named purposes, one key per example.

Every step derives its key as ``fold_in(train_key, step)``, so no key is ever reused and a
resumed run draws exactly the numbers an uninterrupted run would. Per-example keys are folded
from the example's *global* index, which makes the noise independent of how the global batch
is split over devices: 1, 4 or 8 devices see the same randomness.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

AXIS = "data"


def step_key(train_key: jax.Array, step: jax.Array | int) -> jax.Array:
    """The key of training step `step`: ``fold_in(train_key, step)``."""
    return jax.random.fold_in(train_key, step)


def split_named(key: jax.Array, names: Sequence[str]) -> dict[str, jax.Array]:
    """Split `key` into one independent key per purpose, e.g. ``("noise", "dropout")``."""
    return dict(zip(names, jax.random.split(key, len(names)), strict=True))


def per_example_keys(key: jax.Array, local_batch_size: int, axis_name: str = AXIS) -> jax.Array:
    """One key per example of this device's batch shard, folded from its global index.

    Must be called inside a function mapped over `axis_name` (shard_map or pmap).

    Returns:
      Keys of shape ``[local_batch_size]``.
    """
    first = jax.lax.axis_index(axis_name) * local_batch_size
    indices = first + jnp.arange(local_batch_size)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)


def device_key(key: jax.Array, axis_name: str = AXIS) -> jax.Array:
    """A key distinct on each device, for draws whose shape is per device (e.g. dropout masks
    of a device's whole shard). Unlike :func:`per_example_keys`, what it draws depends on the
    number of devices. Must be called inside a function mapped over `axis_name`."""
    return jax.random.fold_in(key, jax.lax.axis_index(axis_name))
