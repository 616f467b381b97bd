"""Run compiled bodies over many batches and collect what they return on the host.

* :func:`masked_sums` turns a body returning per-example values into one returning their sums
  and sums of squares over the real (unpadded) examples of every device, plus the count;
  :func:`means_and_standard_errors` turns the totals into each value's mean and its standard
  error.
* :func:`sum_over_batches` adds those sums up over an iterator of batches.
* :func:`map_in_chunks` feeds a global array through a body that returns one row per
  example (compiled with ``per_example=True``), in fixed-size chunks, and brings every row
  to the host, whatever the number of devices or processes.
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
    """``body(state, batch, key) -> {name: [b]}`` → a body returning ``{"sum": {name: Σ v},
    "sum_sq": {name: Σ v²}, "count": n}`` over the examples whose ``batch["mask"]`` is 1, on
    every device."""

    def summed(state, batch, key):
        mask = batch["mask"]
        out = {k: v.astype(jnp.float32) for k, v in body(state, batch, key).items()}
        sums = {"sum": {k: jnp.sum(v * mask) for k, v in out.items()},
                "sum_sq": {k: jnp.sum(v * v * mask) for k, v in out.items()},
                "count": jnp.sum(mask)}
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


def means_and_standard_errors(total: Mapping) -> tuple[dict, dict, int]:
    """:func:`masked_sums` totals → ``({name: mean}, {name: standard error}, count)``.

    The standard error of a mean over ``n`` examples is ``s / √n`` with ``s²`` the unbiased
    sample variance of the per-example values (left out when ``n < 2``); for a per-example Monte
    Carlo estimate (e.g. bits/dim over sampled timesteps) it covers both the examples and the
    Monte Carlo noise.
    """
    n = int(total["count"])
    means, ses = {}, {}
    for k, s in total["sum"].items():
        means[k] = mean = float(s) / max(n, 1)
        if n > 1:
            var = (float(total["sum_sq"][k]) - n * mean * mean) / (n - 1)
            ses[k] = float(np.sqrt(max(var, 0.0) / n))
    return means, ses, n


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
        outs.append(parallel.fetch_examples(out))
    return jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *outs)
