"""Training and evaluation batches from in-memory shards, with one rule for an epoch.

**The epoch rule (every loader).** The examples of each *stream* — a local shard of a paired
dataset (:class:`TrainLoader`), or one domain of a local shard (:class:`UnpairedLoader`) — form
an endless sequence of permutations. A stream of n examples holds, at position p, example
``perm_e[p mod n]`` with ``e = p // n``, and ``perm_e`` is drawn from
``(seed, shard id, stream, e)`` alone. Training step t takes positions ``t·b … t·b + b − 1``
(b = ``batch_per_shard``); a batch that crosses the end of a permutation takes its tail from
the next one. So:

- every example of a stream is seen exactly once per pass over it, and a shorter stream (the
  smaller CycleGAN domain, or a shard one example shorter than its neighbour) simply wraps
  around more often; no example is dropped;
- a batch is a pure function of ``(seed, shard ids, step)``: a resumed run sees exactly the
  batches of an uninterrupted one, with no iterator state to checkpoint;
- one epoch is ``steps_per_epoch = ceil(L / b)`` steps, where L is the longest stream over all
  processes (pass it as ``longest_shard``; by default the longest local one, exact on one
  process): one pass over the largest shard. It is a unit for the step schedule only; batches do
  not depend on it. For CycleGAN this is the reference's epoch, max(|A|, |B|) examples.

The global batch is the concatenation of the per-shard parts in shard order, so one process
reading shards [0, 1] sees the same global batch as two processes reading one each.

Evaluation (:func:`eval_batches`) reads every example once, in order, with padding and a mask.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np

from jaxgen.data.image_io import resize_square
from jaxgen.data.pipeline import Batch, to_range
from jaxgen.data.unpaired import DOMAINS

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


def _length(shard: Batch) -> int:
    return len(next(iter(shard.values())))


@dataclasses.dataclass
class TrainLoader:
    """Shuffled training batches for the shards this process reads (one stream per shard).

    Attributes:
      shards: one dict of arrays per local shard (equal-length leading axis within a dict).
      shard_ids: the global id of each local shard (seeds its permutations).
      batch_per_shard: examples taken from each shard per step.
      seed: base seed of the shuffles.
      preprocess: maps a raw batch (uint8 images) to model inputs.
      longest_shard: the longest shard over all processes, for :attr:`steps_per_epoch`;
        None uses the longest local one (exact on one process).
    """

    shards: list[Batch]
    shard_ids: list[int]
    batch_per_shard: int
    seed: int
    preprocess: Callable[[Batch], Batch]
    longest_shard: int | None = None

    def __post_init__(self):
        if len(self.shards) != len(self.shard_ids):
            raise ValueError(f"{len(self.shards)} shards for {len(self.shard_ids)} shard ids.")
        self._streams = [
            ExampleStream(_length(shard), seed=self.seed, shard_id=shard_id)
            for shard, shard_id in zip(self.shards, self.shard_ids, strict=True)
        ]

    @property
    def steps_per_epoch(self) -> int:
        """Steps per pass over the longest shard (:func:`steps_per_epoch`)."""
        longest = self.longest_shard or max(s.n for s in self._streams)
        return steps_per_epoch(longest, self.batch_per_shard)

    def batch(self, step: int) -> Batch:
        """The local part of the global batch for training step `step` (0-based)."""
        parts = []
        for shard, stream in zip(self.shards, self._streams, strict=True):
            index = stream.indices(step, self.batch_per_shard)
            parts.append({k: v[index] for k, v in shard.items()})
        return self.preprocess({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


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
      float32 ``[B, crop_size, crop_size, C]`` in [−1, 1].
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
    return to_range(out, "symmetric")


@dataclasses.dataclass
class UnpairedLoader:
    """Independently shuffled batches of both domains for the shards this process reads.

    Each domain of each local shard is its own stream (the module's epoch rule), so the
    domains' orders are independent and the smaller domain wraps around more often. Each part
    is then augmented (:func:`augment`) from ``(seed, shard id, domain, step)``.

    Attributes:
      x: uint8 ``[N_s, H, W, C]`` per local shard, domain X.
      y: the same for domain Y (its own sizes).
      shard_ids: the global id of each local shard.
      batch_per_shard: examples of each domain taken from each shard per step.
      seed: base seed of the shuffles and augmentations.
      load_size: side before cropping; stored images of another size are resized per batch.
      crop_size: side of the output images.
      flip: random horizontal flips.
      longest_shard: the longest shard of either domain over all processes, for
        :attr:`steps_per_epoch`; None uses the longest local one (exact on one process).
    """

    x: list[np.ndarray]
    y: list[np.ndarray]
    shard_ids: list[int]
    batch_per_shard: int
    seed: int
    load_size: int
    crop_size: int
    flip: bool = True
    longest_shard: int | None = None

    def __post_init__(self):
        self._streams: dict[str, list[ExampleStream]] = {}
        for d, domain in enumerate(DOMAINS):
            shards = getattr(self, domain)
            if len(shards) != len(self.shard_ids):
                raise ValueError(
                    f"{len(shards)} {domain} shards for {len(self.shard_ids)} shard ids."
                )
            if any(len(s) == 0 for s in shards):
                raise ValueError(f"an empty {domain} shard; every shard needs examples.")
            self._streams[domain] = [
                ExampleStream(len(s), seed=self.seed, shard_id=i, stream=d)
                for s, i in zip(shards, self.shard_ids, strict=True)
            ]
        if self.crop_size > self.load_size:
            raise ValueError(f"crop_size={self.crop_size} exceeds load_size={self.load_size}.")

    @property
    def steps_per_epoch(self) -> int:
        """Steps per pass over the largest shard of either domain (:func:`steps_per_epoch`).

        With even shards this is ceil(max(|X|, |Y|) / global batch), the reference's epoch.
        """
        longest = self.longest_shard or max(
            s.n for streams in self._streams.values() for s in streams
        )
        return steps_per_epoch(longest, self.batch_per_shard)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """``{"x", "y"}``: float32 ``[b·local shards, crop, crop, C]`` in [−1, 1] for `step`."""
        out = {}
        for d, domain in enumerate(DOMAINS):
            parts = []
            for shard, stream, shard_id in zip(getattr(self, domain), self._streams[domain],
                                               self.shard_ids, strict=True):
                rng = np.random.default_rng([self.seed, shard_id, d, _AUGMENTATION, step])
                parts.append(augment(shard[stream.indices(step, self.batch_per_shard)], rng,
                                     load_size=self.load_size, crop_size=self.crop_size,
                                     flip=self.flip))
            out[domain] = np.concatenate(parts)
        return out


def eval_batches(
    shards: list[Batch],
    *,
    batch_per_shard: int,
    num_steps: int,
    preprocess: Callable[[Batch], Batch],
) -> Iterator[Batch]:
    """Every example of the local shards once, in order, in fixed-size batches.

    The last batches are zero-padded; ``batch["mask"]`` is 1.0 for real examples and 0.0 for
    padding, so sums weighted by the mask are exact. `num_steps` must be the same on every
    process (the longest shard's count) so the collective eval step runs in lockstep.
    """
    for step in range(num_steps):
        parts = []
        for shard in shards:
            n = _length(shard)
            start = step * batch_per_shard
            stop = min(start + batch_per_shard, n)
            real = max(stop - start, 0)
            part = {}
            for k, v in shard.items():
                chunk = v[start:stop] if real else v[:0]
                pad = np.zeros((batch_per_shard - real, *v.shape[1:]), v.dtype)
                part[k] = np.concatenate([chunk, pad])
            part["mask"] = (np.arange(batch_per_shard) < real).astype(np.float32)
            parts.append(part)
        batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        mask = batch.pop("mask")
        batch = preprocess(batch)
        batch["mask"] = mask
        yield batch

