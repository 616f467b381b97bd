"""Pieces every experiment's ``train_and_evaluate`` needs: data shards, optimizer, run setup."""

from __future__ import annotations

import dataclasses
import logging
import math
import os

import jax
import ml_collections
import numpy as np
import optax

from jaxgen.data import pipeline, sources
from jaxgen.training import Checkpointer, DataParallel, MetricWriter


@dataclasses.dataclass
class Shards:
    """This process's shards of one split, and the global facts every process agrees on."""

    arrays: list[pipeline.Batch]
    shard_ids: list[int]
    num_shards: int
    min_len: int  # shortest shard over all processes
    max_len: int  # longest shard over all processes


def _global_min_max(lengths: list[int]) -> tuple[int, int]:
    if jax.process_count() == 1:
        return min(lengths), max(lengths)
    from jax.experimental import multihost_utils

    gathered = np.asarray(
        multihost_utils.process_allgather(np.asarray([min(lengths), max(lengths)]))
    )
    return int(gathered[:, 0].min()), int(gathered[:, 1].max())


def load_shards(data: ml_collections.ConfigDict, split: str, *, seed: int) -> Shards:
    """Load this process's shards of `split` as configured by ``config.data``."""
    num_shards = data.num_shards or jax.process_count()
    shard_ids = pipeline.shards_of_process(num_shards, jax.process_index(), jax.process_count())
    arrays = sources.load_image_shards(
        source=data.source, name=data.name, split=split, num_shards=num_shards,
        shard_ids=shard_ids, data_dir=data.data_dir, local_dir=data.local_dir,
        download=data.download, synthetic_examples=data.synthetic_examples,
        image_shape=tuple(data.image_shape), seed=seed,
    )
    lo, hi = _global_min_max([len(a["image"]) for a in arrays])
    return Shards(arrays, shard_ids, num_shards, lo, hi)


def per_shard_batch(global_batch: int, shards: Shards, parallel: DataParallel, what: str) -> int:
    """Examples per shard per step; checks the global batch splits over shards and devices."""
    if global_batch % shards.num_shards:
        raise ValueError(
            f"{what} ({global_batch}) must be divisible by the number of data shards "
            f"({shards.num_shards})."
        )
    per_shard = global_batch // shards.num_shards
    local = per_shard * len(shards.shard_ids)
    if local % parallel.num_local_devices:
        raise ValueError(
            f"{what} gives {local} examples per process, not divisible by its "
            f"{parallel.num_local_devices} devices; choose a global size that is a multiple "
            f"of {shards.num_shards * parallel.num_local_devices}."
        )
    return per_shard


def make_optimizer(opt: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam with optional global-norm gradient clipping."""
    adam = optax.adam(opt.learning_rate, b1=opt.b1, b2=opt.b2)
    if opt.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), adam)
    return adam


@dataclasses.dataclass
class Run:
    """Output plumbing of one run in a workdir."""

    workdir: str
    parallel: DataParallel
    writer: MetricWriter
    checkpointer: Checkpointer

    def close(self):
        self.checkpointer.close()
        self.writer.close()


def make_run(config: ml_collections.ConfigDict, workdir: str) -> Run:
    os.makedirs(workdir, exist_ok=True)
    parallel = DataParallel(config.train.parallel)
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), every_steps=config.train.checkpoint_every,
        keep=config.train.keep_checkpoints,
    )
    logging.info(
        "%d process(es), %d device(s) (%d local), parallel=%s", jax.process_count(),
        parallel.num_devices, parallel.num_local_devices, parallel.mode,
    )
    return Run(workdir, parallel, writer, checkpointer)


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    if config.train.num_steps > 0:
        return config.train.num_steps
    if steps_per_epoch < 1:
        raise ValueError("the training split is smaller than one batch; lower train.batch_size.")
    return config.train.num_epochs * steps_per_epoch


def eval_steps(shards: Shards, per_shard: int, max_examples: int) -> tuple[list, int]:
    """Truncate shards to ``max_examples`` in total (0: all) and count eval steps."""
    arrays = shards.arrays
    longest = shards.max_len
    if max_examples > 0:
        cap = max(1, max_examples // shards.num_shards)
        arrays = [{k: v[:cap] for k, v in a.items()} for a in arrays]
        longest = min(longest, cap)
    return arrays, math.ceil(longest / per_shard)
