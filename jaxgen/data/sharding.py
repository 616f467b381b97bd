"""How a global batch splits over data shards, processes and devices."""

from __future__ import annotations

import jax
import numpy as np

from jaxgen.validation import ConfigError


def global_min_max(lengths: list[int]) -> tuple[int, int]:
    """The min and max of `lengths` over every process."""
    if jax.process_count() == 1:
        return min(lengths), max(lengths)
    from jax.experimental import multihost_utils

    gathered = np.asarray(
        multihost_utils.process_allgather(np.asarray([min(lengths), max(lengths)])))
    return int(gathered[:, 0].min()), int(gathered[:, 1].max())


def split_batch(global_batch: int, *, num_shards: int, local_shards: int,
                num_local_devices: int, what: str) -> int:
    """Examples per shard per step of a global batch read from `num_shards` shards.

    Raises:
      ConfigError: when the batch does not split evenly over shards and devices.
    """
    if global_batch < 1:
        raise ConfigError(f"{what}={global_batch} must be a positive integer.")
    if global_batch % num_shards:
        raise ConfigError(f"{what}={global_batch} must be divisible by the number of data "
                          f"shards ({num_shards}).")
    per_shard = global_batch // num_shards
    local = per_shard * local_shards
    if local % num_local_devices:
        raise ConfigError(
            f"{what}={global_batch} gives {local} examples per process, not divisible by its "
            f"{num_local_devices} devices; choose a multiple of "
            f"{num_shards * num_local_devices}.")
    return per_shard
