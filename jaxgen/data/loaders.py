"""Training and evaluation batches read from random-access sources, with one rule for an epoch.

**The epoch rule.** The examples of each *stream* — one domain ("image", or CycleGAN's "x" and
"y") of one data shard — form an endless sequence of permutations. A stream of n examples
holds, at position p, example ``perm_e[p mod n]`` with ``e = p // n``, and ``perm_e`` is drawn
from ``(seed, shard id, stream, e)`` alone. Training step t takes positions
``t·b … t·b + b − 1`` (b = ``batch_per_shard``); a batch that crosses the end of a permutation
takes its tail from the next one. So:

- every example of a stream is seen exactly once per pass over it, and a shorter stream (the
  smaller CycleGAN domain, or a shard one example shorter than its neighbour) simply wraps
  around more often; no example is dropped;
- a batch is a pure function of ``(seed, shard ids, step)`` (and the files): a resumed run sees
  exactly the batches of an uninterrupted one, with no iterator state to checkpoint, whatever
  the number of reader threads or worker processes;
- one epoch is ``steps_per_epoch = ceil(L / b)`` steps, where L is the longest stream over all
  processes (pass it as ``longest_shard``; by default the longest local one, exact on one
  process). It is a unit for the step schedule only; batches do not depend on it. For
  CycleGAN this is the reference's epoch, max(|A|, |B|) examples.

The global batch is the concatenation of the per-shard parts in shard order, so one process
reading shards [0, 1] sees the same global batch as two processes reading one each.

**Streaming.** :meth:`TrainBatches.iterate` is a grain pipeline: ``MapDataset.range(start, …)``
mapped by :meth:`TrainBatches.batch`, read ahead by threads (``workers=0``) or by worker
processes (``mp_prefetch``) that read, decode and convert the files. Nothing holds a split.

**Bad records.** A record that cannot be read or converted (a corrupt, truncated or vanished
file) is replaced by the next readable record of its shard — deterministically, so resume stays
exact — and counted. :class:`BadRecords` names the first few in the log and the run's summary,
and stops the run when more than ``max_bad_fraction`` of the records read are bad.

Evaluation (:func:`eval_batches`) reads every example once, in order, with padding and a mask.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grain
import numpy as np

from jaxgen.data.image_io import resize_square
from jaxgen.data.pipeline import Batch, to_range
from jaxgen.data.records import BadRecord, read_example

# Seed-sequence tags keep the permutation and augmentation streams of one shard apart even
# when an epoch number equals a step number.
_PERMUTATION, _AUGMENTATION = 0, 1


def steps_per_epoch(longest_shard: int, batch_per_shard: int) -> int:
    """Steps in one epoch: ``ceil(longest_shard / batch_per_shard)`` (see the module rule)."""
    if longest_shard < 1 or batch_per_shard < 1:
        raise ValueError(
            f"an epoch needs a non-empty shard and batch, got longest_shard={longest_shard}, "
            f"batch_per_shard={batch_per_shard}."
        )
    return math.ceil(longest_shard / batch_per_shard)


class ExampleStream:
    """The endless sequence of permutations of one stream's n examples (the module's rule).

    Args:
      n: number of examples in the stream.
      seed: base seed.
      shard_id: global id of the shard.
      stream: which stream of the shard (0 for a paired shard; the domain index for unpaired).
    """

    def __init__(self, n: int, *, seed: int, shard_id: int, stream: int = 0):
        if n < 1:
            raise ValueError(f"shard {shard_id} stream {stream} is empty; every shard needs "
                             "examples.")
        self.n = n
        self._key = (seed, shard_id, stream, _PERMUTATION)
        self._perms: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        """``perm_epoch``: a permutation of ``range(n)`` drawn from (seed, shard, stream, epoch)."""
        if epoch not in self._perms:
            if len(self._perms) >= 4:  # steps move forward; keep only a few recent epochs
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([*self._key, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int, batch: int) -> np.ndarray:
        """Example indices of positions ``step·batch … step·batch + batch − 1``."""
        positions = step * batch + np.arange(batch)
        epochs, offsets = np.divmod(positions, self.n)
        first, last = int(epochs[0]), int(epochs[-1])
        if first == last:  # the common case: one permutation
            return self.permutation(first)[offsets]
        out = np.empty_like(positions)
        for epoch in range(first, last + 1):
            where = epochs == epoch
            out[where] = self.permutation(epoch)[offsets[where]]
        return out


def augment(
    images: np.ndarray, rng: np.random.Generator, *, load_size: int, crop_size: int,
    flip: bool,
) -> np.ndarray:
    """CycleGAN's training transform (Zhu et al. 2017): resize, random crop, random flip.

    Args:
      images: uint8 ``[B, H, W, C]``; resized (bicubic) only when not ``load_size`` square.
      rng: source of the crop offsets and flips (one draw per image).
      load_size: side before cropping (286 for 256 crops).
      crop_size: output side; equal to ``load_size`` means no crop.
      flip: flip each image left–right with probability ½.

    Returns:
      uint8 ``[B, crop_size, crop_size, C]``.
    """
    if crop_size > load_size:
        raise ValueError(f"crop_size={crop_size} exceeds load_size={load_size}.")
    b = len(images)
    tops = rng.integers(0, load_size - crop_size + 1, size=b)
    lefts = rng.integers(0, load_size - crop_size + 1, size=b)
    flips = rng.random(b) < 0.5 if flip else np.zeros(b, bool)
    out = np.empty((b, crop_size, crop_size, images.shape[-1]), np.uint8)
    for i, image in enumerate(images):
        image = resize_square(image, load_size)
        crop = image[tops[i] : tops[i] + crop_size, lefts[i] : lefts[i] + crop_size]
        out[i] = crop[:, ::-1] if flips[i] else crop
    return out


class TooManyBadRecords(ValueError):
    """More than ``data.max_bad_fraction`` of the records read were bad."""


@dataclasses.dataclass(frozen=True)
class Reading:
    """How a record becomes an example: square side (0: as stored), channels and resize mode
    (:func:`jaxgen.data.records.fit_image`)."""

    size: int
    channels: int
    resize: str = "crop"


# Replacement tries for a bad record before the shard is declared unreadable.
_MAX_TRIES = 32


def read_or_replace(source, i: int, reading: Reading) -> tuple[dict, list[tuple[str, str]]]:
    """Example `i` of `source`, or when it is bad the next readable one (i + 1, i + 2, … mod
    n): deterministic, so a batch stays a pure function of its step. Returns the example and
    the bad records met, ``[(where, why), ...]``."""
    bad = []
    n = len(source)
    for k in range(min(n, _MAX_TRIES)):
        try:
            example = read_example(source, (i + k) % n, size=reading.size,
                                   channels=reading.channels, resize=reading.resize)
            return example, bad
        except BadRecord as e:
            bad.append((e.where, e.why))
    raise TooManyBadRecords(
        f"{len(bad)} records in a row are unreadable, starting at {bad[0][0]} ({bad[0][1]}); "
        "check the dataset's files.")


def read_batch(source, indices, reading: Reading) -> tuple[Batch, list[tuple[str, str]]]:
    """The examples `indices` of `source` stacked (uint8 images, int32 labels when present).
    A source whose records need no per-image work (images in memory at the run's shape)
    gives them by array indexing (``take``)."""
    take = getattr(source, "take", None)
    if take is not None and len(indices):
        out = take(np.asarray(indices, np.int64), size=reading.size,
                   channels=reading.channels, resize=reading.resize)
        if out is not None:
            return out, []
    examples, bad = [], []
    for i in indices:
        example, b = read_or_replace(source, int(i), reading)
        examples.append(example)
        bad.extend(b)
    out = {"image": np.stack([e["image"] for e in examples])}
    if "label" in examples[0]:
        out["label"] = np.asarray([e["label"] for e in examples], np.int32)
    return out, bad


class BadRecords:
    """Counts the records read and the bad ones; names the first few; stops the run when more
    than `max_bad_fraction` of the records read are bad (checked once at least
    ``min(256, dataset size)`` records were read, so one early bad file does not stop a run).
    """

    SHOWN = 5

    def __init__(self, max_bad_fraction: float, *, dataset_size: int, what: str = "data"):
        self.max_bad_fraction = max_bad_fraction
        self.min_read = min(256, dataset_size)
        self.what = what
        self.read = 0
        self.bad = 0
        self.first: list[str] = []

    def add(self, read: int, bad: Sequence[tuple[str, str]]) -> None:
        """`read` examples were made, meeting the records `bad` on the way (each a read too,
        so the bad share is at most 1)."""
        self.read += read + len(bad)
        self.bad += len(bad)
        for where, why in bad:
            if len(self.first) < self.SHOWN and where not in self.first:
                self.first.append(where)
                print(f"{self.what}: skipped bad record {where} ({why}); replaced by the next "
                      "readable record", file=sys.stderr)
        if self.read >= self.min_read:
            self.check()

    def check(self) -> None:
        """Stop (:class:`TooManyBadRecords`) when the bad share exceeds the limit; called once
        enough records were read, and at the end of a read however few."""
        if self.bad and self.bad > self.max_bad_fraction * self.read:
            raise TooManyBadRecords(
                f"{self.what}: {self.bad} of the {self.read} records read are bad, more than "
                f"data.max_bad_fraction={self.max_bad_fraction}; the first: "
                f"{', '.join(self.first)}. Fix or remove those files, or raise "
                "data.max_bad_fraction.")

    def report(self) -> dict:
        return {"records_read": self.read, "bad_records": self.bad,
                "first_bad_records": list(self.first)}


def _grain_iter(dataset: grain.MapDataset, workers: int, threads: int):
    """Read `dataset` ahead in order: in `threads` threads, or in `workers` processes."""
    it = dataset.to_iter_dataset(grain.ReadOptions(num_threads=max(1, threads),
                                                   prefetch_buffer_size=max(2, 2 * threads)))
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (their defaults)
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return it


@dataclasses.dataclass
class TrainBatches:
    """Shuffled training batches of the shards this process reads (the module's epoch rule).

    Attributes:
      domains: ``{domain: [source per local shard]}``; ``{"image": ...}`` for single-domain
        data, ``{"x": ..., "y": ...}`` for CycleGAN. Each domain of each shard is a stream
        (stream id = the domain's position).
      shard_ids: the global id of each local shard (seeds its permutations).
      batch_per_shard: examples of each domain taken from each shard per step.
      seed: base seed of the shuffles and augmentations.
      reading: how records become uint8 examples (:class:`Reading`).
      input_range: the family's input range (:func:`jaxgen.data.pipeline.to_range`).
      augment: ``(uint8 images, rng) -> uint8 images`` per domain part (CycleGAN's crops and
        flips), drawn from ``(seed, shard id, stream, step)``; None: none.
      longest_shard: the longest stream over all processes, for :attr:`steps_per_epoch`;
        None uses the longest local one (exact on one process).
      workers: worker processes that read and decode (0: threads of this process).
      threads: reading threads (per worker process, or in this process).
      max_bad_fraction: stop when more than this share of the records read are bad.
    """

    domains: dict[str, list[Any]]
    shard_ids: list[int]
    batch_per_shard: int
    seed: int
    reading: Reading
    input_range: str
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    longest_shard: int | None = None
    workers: int = 0
    threads: int = 2
    max_bad_fraction: float = 0.01

    def __post_init__(self):
        self._streams = {}
        for d, (domain, shards) in enumerate(self.domains.items()):
            if len(shards) != len(self.shard_ids):
                raise ValueError(f"{len(shards)} {domain} shards for {len(self.shard_ids)} "
                                 "shard ids.")
            self._streams[domain] = [ExampleStream(len(s), seed=self.seed, shard_id=i, stream=d)
                                     for s, i in zip(shards, self.shard_ids, strict=True)]
        size = sum(len(s) for shards in self.domains.values() for s in shards)
        self.bad_records = BadRecords(self.max_bad_fraction, dataset_size=size,
                                      what="training data")

    @property
    def steps_per_epoch(self) -> int:
        """Steps per pass over the longest stream (:func:`steps_per_epoch`)."""
        longest = self.longest_shard or max(
            s.n for streams in self._streams.values() for s in streams)
        return steps_per_epoch(longest, self.batch_per_shard)

    def batch(self, step: int) -> Batch:
        """This process's part of the global batch of `step`: float images in the input range
        under each domain's name (with ``"label"`` for labelled single-domain data). A pure
        function of (seed, shard ids, step); bad records are replaced (not counted here)."""
        out = self._read(step)
        del out["_bad"]
        return out

    def _read(self, step: int) -> Batch:
        """:meth:`batch` plus ``"_bad"``, the bad records met."""
        out, bad = {}, []
        for d, (domain, shards) in enumerate(self.domains.items()):
            parts = []
            for shard, stream, shard_id in zip(shards, self._streams[domain], self.shard_ids,
                                               strict=True):
                part, b = read_batch(shard, stream.indices(step, self.batch_per_shard),
                                     self.reading)
                bad.extend(b)
                if self.augment is not None:
                    rng = np.random.default_rng([self.seed, shard_id, d, _AUGMENTATION, step])
                    part["image"] = self.augment(part["image"], rng)
                parts.append(part)
            out[domain] = to_range(np.concatenate([p["image"] for p in parts]),
                                   self.input_range)
            if len(self.domains) == 1 and "label" in parts[0]:
                out["label"] = np.concatenate([p["label"] for p in parts])
        out["_bad"] = bad
        return out

    def iterate(self, start: int, stop: int) -> Iterator[Batch]:
        """The batches of steps ``start … stop − 1``, read ahead (threads or processes), bad
        records counted (:class:`BadRecords`)."""
        read = self.batch_per_shard * len(self.shard_ids) * len(self.domains)
        it = iter(_grain_iter(grain.MapDataset.range(start, stop).map(self._read),
                              self.workers, self.threads))
        try:
            for batch in it:
                self.bad_records.add(read, batch.pop("_bad"))
                if self.workers:  # out of grain's shared memory (freed here, not at exit)
                    shared, batch = batch, {k: np.array(v) for k, v in batch.items()}
                    del shared
                yield batch
        finally:  # stop the readers (and free their buffers) however the loop ends
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self.bad_records.check()


def eval_batches(
    shards: list[Any],
    *,
    batch_per_shard: int,
    num_steps: int,
    reading: Reading,
    preprocess: Callable[[Batch], Batch],
    max_examples_per_shard: int = 0,
    max_bad_fraction: float = 0.01,
    threads: int = 2,
) -> Iterator[Batch]:
    """Every example of the local shards once, in order, in fixed-size batches.

    The last batches are zero-padded; ``batch["mask"]`` is 1.0 for real examples and 0.0 for
    padding, so sums weighted by the mask are exact. `num_steps` must be the same on every
    process (the longest shard's count) so the collective eval step runs in lockstep. A bad
    record is replaced by the next readable one (:func:`read_or_replace`) and counted.
    """
    lengths = [len(s) if not max_examples_per_shard else min(len(s), max_examples_per_shard)
               for s in shards]
    bad_records = BadRecords(max_bad_fraction, dataset_size=sum(lengths),
                             what="evaluation data")
    probe, _ = read_batch(shards[0], [0], reading)  # shapes and dtypes of an empty part

    def make(step: int) -> Batch:
        parts, bad = [], []
        for shard, n in zip(shards, lengths, strict=True):
            start = step * batch_per_shard
            stop = min(start + batch_per_shard, n)
            real = max(stop - start, 0)
            part, b = read_batch(shard, range(start, stop), reading) if real else (
                {k: v[:0] for k, v in probe.items()}, [])
            bad.extend(b)
            part = {k: np.concatenate([v, np.zeros((batch_per_shard - real, *v.shape[1:]),
                                                   v.dtype)]) for k, v in part.items()}
            part["mask"] = (np.arange(batch_per_shard) < real).astype(np.float32)
            parts.append(part)
        batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        mask = batch.pop("mask")
        batch = preprocess(batch)
        batch["mask"] = mask
        batch["_bad"], batch["_read"] = bad, int(mask.sum())
        return batch

    for batch in _grain_iter(grain.MapDataset.range(num_steps).map(make), 0, threads):
        bad_records.add(batch.pop("_read"), batch.pop("_bad"))
        yield batch
    bad_records.check()
