"""Pieces every experiment's ``train_and_evaluate`` needs: data shards, optimizer, run setup."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import operator
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np
import optax

from jaxgen.data import loaders, pipeline
from jaxgen.training import Checkpointer, DataParallel, MetricWriter, fit


@dataclasses.dataclass
class Shards:
    """This process's shards of one split, and the global facts every process agrees on."""

    arrays: list[pipeline.Batch]
    shard_ids: list[int]
    num_shards: int
    min_len: int  # shortest shard over all processes
    max_len: int  # longest shard over all processes


def global_min_max(lengths: list[int]) -> tuple[int, int]:
    """The min and max of `lengths` over every process."""
    if jax.process_count() == 1:
        return min(lengths), max(lengths)
    from jax.experimental import multihost_utils

    gathered = np.asarray(
        multihost_utils.process_allgather(np.asarray([min(lengths), max(lengths)]))
    )
    return int(gathered[:, 0].min()), int(gathered[:, 1].max())


def load_shards(data: ml_collections.ConfigDict, split: str, *, seed: int) -> Shards:
    """Load this process's shards of `split` as configured by ``config.data``."""
    from jaxgen.data import sources  # TFDS: imported where data is read (see benchmarks/)

    num_shards = data.num_shards or jax.process_count()
    shard_ids = pipeline.shards_of_process(num_shards, jax.process_index(), jax.process_count())
    arrays = sources.load_image_shards(
        source=data.source, name=data.name, split=split, num_shards=num_shards,
        shard_ids=shard_ids, data_dir=data.data_dir, local_dir=data.local_dir,
        download=data.download, synthetic_examples=data.synthetic_examples,
        image_shape=tuple(data.image_shape), seed=seed,
    )
    lo, hi = global_min_max([len(a["image"]) for a in arrays])
    return Shards(arrays, shard_ids, num_shards, lo, hi)


def per_shard_batch(global_batch: int, shards: Shards, parallel: DataParallel, what: str) -> int:
    """Examples per shard per step; checks the global batch splits over shards and devices."""
    return split_batch(global_batch, num_shards=shards.num_shards,
                       local_shards=len(shards.shard_ids), parallel=parallel, what=what)


def split_batch(global_batch: int, *, num_shards: int, local_shards: int,
                parallel: DataParallel, what: str) -> int:
    """Examples per shard per step of a global batch read from `num_shards` shards."""
    if global_batch % num_shards:
        raise ValueError(
            f"{what} ({global_batch}) must be divisible by the number of data shards "
            f"({num_shards})."
        )
    per_shard = global_batch // num_shards
    local = per_shard * local_shards
    if local % parallel.num_local_devices:
        raise ValueError(
            f"{what} gives {local} examples per process, not divisible by its "
            f"{parallel.num_local_devices} devices; choose a global size that is a multiple "
            f"of {num_shards * parallel.num_local_devices}."
        )
    return per_shard


SCHEDULES = ("constant", "linear_decay")


def learning_rate_schedule(opt: ml_collections.ConfigDict, num_steps: int
                           ) -> float | optax.Schedule:
    """Linear warmup over ``opt.warmup_steps``, then constant (``"constant"``) or constant and
    finally linear to zero over the last ``opt.decay_fraction`` of `num_steps`
    (``"linear_decay"``, CycleGAN's: n epochs constant, then n epochs decaying)."""
    if opt.schedule not in SCHEDULES:
        raise ValueError(f"unknown optimizer.schedule {opt.schedule!r}; choose one of {SCHEDULES}.")
    lr = opt.learning_rate
    if opt.warmup_steps <= 0 and opt.schedule == "constant":
        return lr  # a plain number keeps the optimizer state free of a schedule counter
    pieces, boundaries = [], []
    if opt.warmup_steps > 0:
        pieces.append(optax.linear_schedule(0.0, lr, opt.warmup_steps))
        boundaries.append(opt.warmup_steps)
    if opt.schedule == "constant" or num_steps <= 0:  # 0: not training; same state structure
        pieces.append(optax.constant_schedule(lr))
    else:
        decay_steps = max(1, round(opt.decay_fraction * num_steps))
        decay_start = num_steps - decay_steps
        if decay_start < opt.warmup_steps:
            raise ValueError("optimizer.warmup_steps overlaps the decay phase; lower one of them.")
        pieces += [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay_steps)]
        boundaries.append(decay_start)
    return optax.join_schedules(pieces, boundaries) if boundaries else pieces[0]


def make_optimizer(opt: ml_collections.ConfigDict, num_steps: int = 0
                   ) -> optax.GradientTransformation:
    """Adam (``opt.b1``, ``opt.b2``) on :func:`learning_rate_schedule`, with optional
    global-norm gradient clipping (``opt.grad_clip_norm`` > 0)."""
    adam = optax.adam(learning_rate_schedule(opt, num_steps), b1=opt.b1, b2=opt.b2)
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


def image_train_loader(
    config: ml_collections.ConfigDict, parallel: DataParallel,
    preprocess: Callable[[pipeline.Batch], pipeline.Batch],
) -> tuple[loaders.TrainLoader, int]:
    """The shuffled training batches of ``config.data`` and the number of steps per epoch."""
    train = load_shards(config.data, "train", seed=config.seed)
    per_shard = per_shard_batch(config.train.batch_size, train, parallel, "batch_size")
    loader = loaders.TrainLoader(
        shards=train.arrays, shard_ids=train.shard_ids, batch_per_shard=per_shard,
        seed=config.seed, preprocess=preprocess, longest_shard=train.max_len,
    )
    return loader, loader.steps_per_epoch


class Experiment(Protocol):
    """What :func:`train_and_summarize` needs from an experiment."""

    run: Run
    initial_state: Any
    train_step: Callable
    train_key: Any

    def evaluate(self, device_state: Any, step: int) -> dict[str, float]: ...

    def load_eval_data(self) -> None:
        """Read the evaluation data now (before training starts; see train_and_summarize)."""


def train_and_summarize(
    exp: Experiment, config: ml_collections.ConfigDict, workdir: str, *, name: str,
    batch_for_step: Callable[[int], Any], steps_per_epoch: int, started: float,
) -> dict:
    """Run :func:`jaxgen.training.fit` for `exp`, write ``summary.json`` and close the run."""
    run = exp.run
    try:
        # Read the eval split up front rather than at the first evaluation: TFDS's reading
        # must not overlap the checkpointer's background file operations (and a missing split
        # should fail before hours of training, not after).
        exp.load_eval_data()
        state, train_metrics, final = fit(
            state=exp.initial_state, train_step=exp.train_step, batch_for_step=batch_for_step,
            parallel=run.parallel, train_key=exp.train_key,
            num_steps=num_train_steps(config, steps_per_epoch), checkpointer=run.checkpointer,
            writer=run.writer, log_every=config.train.log_every,
            eval_every=config.train.eval_every, evaluate=exp.evaluate,
            progress=config.train.progress,
        )
        summary = {
            "experiment": name,
            "workdir": os.path.abspath(workdir),
            "step": int(state.step),
            "steps_per_epoch": steps_per_epoch,
            "wall_time_s": time.perf_counter() - started,
            "devices": run.parallel.num_devices,
            "processes": jax.process_count(),
            **train_metrics,
            **final,
            "config": config.to_dict(),
        }
        run.writer.write_summary(summary)
    finally:
        run.close()
    return summary


def train_on_images(config: ml_collections.ConfigDict, workdir: str, make_experiment: Callable,
                    *, name: str) -> dict:
    """Train an experiment on ``config.data``'s images, padded to ``data.image_size`` and
    scaled to [−1, 1]: ``make_experiment(config, run, num_steps)`` builds it."""
    started = time.perf_counter()
    run = make_run(config, workdir)
    loader, steps_per_epoch = image_train_loader(
        config, run.parallel, pipeline.padded_symmetric(config.data.image_size))
    exp = make_experiment(config, run, num_train_steps(config, steps_per_epoch))
    return train_and_summarize(exp, config, workdir, name=name, batch_for_step=loader.batch,
                               steps_per_epoch=steps_per_epoch, started=started)


def evaluate_latest(exp: Experiment, workdir: str) -> dict:
    """Evaluate the latest checkpoint in ``workdir`` with `exp`; write ``eval_summary.json``."""
    try:
        state = exp.run.checkpointer.restore(exp.initial_state)
        metrics = exp.evaluate(exp.run.parallel.replicate(state), int(state.step))
        metrics["step"] = int(state.step)
        write_json(workdir, "eval_summary.json", metrics)
    finally:
        exp.run.close()
    return metrics


def write_json(workdir: str, filename: str, payload: dict) -> None:
    """Write `payload` to ``<workdir>/<filename>`` on process 0."""
    if jax.process_index() == 0:
        with open(os.path.join(workdir, filename), "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)


def masked_sums(
    step_fn: Callable, device_state: Any, shards: Shards, parallel: DataParallel, *,
    global_batch: int, max_examples: int, key: jax.Array,
    preprocess: Callable[[pipeline.Batch], pipeline.Batch],
) -> dict[str, np.ndarray]:
    """Sum ``step_fn(state, batch, key_i)`` (psum-ed masked sums) over the eval batches."""
    per_shard = per_shard_batch(global_batch, shards, parallel, "eval batch")
    arrays, n_steps = eval_steps(shards, per_shard, max_examples)
    batches = loaders.eval_batches(arrays, batch_per_shard=per_shard, num_steps=n_steps,
                                   preprocess=preprocess)
    return sum_over_batches(step_fn, device_state, batches, parallel, key)


def sum_over_batches(step_fn: Callable, device_state: Any, batches, parallel: DataParallel,
                     key: jax.Array) -> dict[str, np.ndarray]:
    """Add up ``step_fn(state, batch_i, fold_in(key, i))`` on the devices; fetch the total."""
    total = None
    for i, batch in enumerate(batches):
        out = step_fn(device_state, parallel.shard_batch(batch), jax.random.fold_in(key, i))
        total = out if total is None else jax.tree.map(operator.add, total, out)
    return parallel.fetch(total)


def save_samples(workdir: str, name: str, images: np.ndarray, *, write_png: bool) -> dict:
    """Write ``images`` [N, H, W, C] in [−1, 1] as uint8 to ``<workdir>/samples/<name>.npz``
    (key ``images``) and, with `write_png`, one PNG per image into ``<workdir>/samples/<name>/``
    (process 0 only)."""
    out_dir = os.path.join(workdir, "samples")
    result = {"num_samples": len(images)}
    if jax.process_index() != 0:
        return result
    os.makedirs(out_dir, exist_ok=True)
    result["npz"] = os.path.join(out_dir, f"{name}.npz")
    np.savez_compressed(result["npz"], images=pipeline.to_uint8(images))
    if write_png:
        from jaxgen.data import image_io

        folder = os.path.join(out_dir, name)
        image_io.save_images(images, folder, [f"{i:06d}" for i in range(len(images))])
        result["png_dir"] = folder
    return result
