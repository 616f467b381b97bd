"""Run compiled bodies over many batches and collect what they return on the host.

* :func:`masked_sums` turns a body returning per-example values into one returning their sums
  over the real (unpadded) examples of every device, plus the count.
* :func:`sum_over_batches` adds those sums up over an iterator of batches.
* :func:`map_in_chunks` feeds a global array through a body that returns a global
  (all-gathered) result, in fixed-size chunks, whatever the number of devices or processes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.training.keys import AXIS
from jaxgen.training.parallel import DataParallel


def masked_sums(body: Callable) -> Callable:
    """``body(state, batch, key) -> {name: [b]}`` → a body returning ``{name: sum}`` over the
    examples whose ``batch["mask"]`` is 1 on every device, and ``"count"``, their number."""

    def summed(state, batch, key):
        mask = batch["mask"]
        out = body(state, batch, key)
        sums = {k: jnp.sum(v.astype(jnp.float32) * mask) for k, v in out.items()}
        sums["count"] = jnp.sum(mask)
        return jax.lax.psum(sums, AXIS)

    summed.__name__ = getattr(body, "__name__", "eval")
    return summed


def sum_over_batches(step: Callable, device_state: Any, batches: Iterable[Mapping],
                     parallel: DataParallel, key: jax.Array) -> dict[str, np.ndarray]:
    """Add up ``step(state, batch_i, fold_in(key, i))`` on the devices; fetch the total."""
    total = None
    for i, batch in enumerate(batches):
        out = step(device_state, parallel.shard_batch(batch), jax.random.fold_in(key, i))
        total = out if total is None else jax.tree.map(operator.add, total, out)
    return parallel.fetch(total)


def map_in_chunks(step: Callable, device_state: Any, inputs: Mapping[str, np.ndarray], *,
                  chunk: int, parallel: DataParallel, key: jax.Array) -> Any:
    """``step`` over the global ``inputs`` ([N, ...] each, the same on every process) in
    chunks of ``chunk`` examples; returns the concatenated global outputs, first N rows.

    The last chunk is padded with copies of the first example. Each process passes its slice
    of every chunk; chunk ``i`` gets the key ``fold_in(key, i)``.
    """
    n = len(next(iter(inputs.values())))
    if chunk % parallel.num_devices:
        raise ValueError(f"the chunk of {chunk} examples must be divisible by the number of "
                         f"devices ({parallel.num_devices}).")
    local = chunk // jax.process_count()
    lo = jax.process_index() * local
    outs = []
    for i, start in enumerate(range(0, n, chunk)):
        part = {}
        for k, v in inputs.items():
            v = np.asarray(v[start:start + chunk])
            if len(v) < chunk:
                v = np.concatenate([v, np.repeat(v[:1], chunk - len(v), axis=0)])
            part[k] = v[lo:lo + local]
        out = step(device_state, parallel.shard_batch(part), jax.random.fold_in(key, i))
        outs.append(jax.tree.map(np.asarray, parallel.fetch(out)))
    return jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *outs)
