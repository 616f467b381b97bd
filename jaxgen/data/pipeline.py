"""Host-side preprocessing: which shards a process reads, scaling, padding, toy images.

Fashion-MNIST-sized datasets (60k × 28 × 28 bytes) fit in memory many times over, so each
process loads only *its* shards once (``tfds.even_splits``) and the loaders of
:mod:`jaxgen.data.loaders` draw batches from them with NumPy. The number of shards defaults to
the number of processes, one shard each; a single process can also read several shards
(``num_shards`` > process count), which reproduces a multi-host data order.

The functions here are pure NumPy on uint8 ``[N, H, W, C]`` images; :func:`to_range` is the one
uint8 → float conversion (to a family's input range).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Batch = dict[str, np.ndarray]


def shards_of_process(num_shards: int, process_index: int, process_count: int) -> list[int]:
    """The shard ids process `process_index` reads: a contiguous block of `num_shards / P`."""
    if num_shards % process_count:
        raise ValueError(
            f"data.num_shards={num_shards} must be a multiple of the process count "
            f"({process_count}); set it to 0 to use one shard per process."
        )
    per = num_shards // process_count
    return list(range(process_index * per, (process_index + 1) * per))


def synthetic_images(
    num_examples: int,
    image_shape: Sequence[int],
    *,
    seed: int | Sequence[int],
    num_classes: int = 10,
) -> Batch:
    """Deterministic toy images (a bright Gaussian blob per image) as uint8, with labels.

    Used where no dataset is wanted: tests in subprocesses, and smoke runs on a bare machine.
    """
    rng = np.random.default_rng(seed)
    h, w, c = image_shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = rng.uniform(0.25, 0.75, size=(num_examples, 2, 1, 1)) * np.array([h, w]).reshape(
        1, 2, 1, 1
    )
    width = rng.uniform(0.08, 0.2, size=(num_examples, 1, 1)) * min(h, w)
    dist2 = (yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2
    blob = np.exp(-dist2 / (2 * width**2))
    image = np.repeat(blob[..., None], c, axis=-1)
    return {
        "image": np.round(255 * image).astype(np.uint8),
        "label": rng.integers(0, num_classes, size=num_examples).astype(np.int64),
    }


def to_range(images: np.ndarray, input_range: str) -> np.ndarray:
    """uint8 images ``[..., C]`` in [0, 255] → float32 in a family's input range.

    ``"unit"``: ``x / 255`` in [0, 1]; ``"symmetric"``: ``x / 127.5 − 1`` in [−1, 1] (the
    reference's ToTensor + Normalize(0.5, 0.5)). The one uint8 → float conversion of the data
    layer: every loader's batches and evaluation images go through it.
    """
    if input_range == "unit":
        return images.astype(np.float32) / 255.0
    if input_range == "symmetric":
        out = images.astype(np.float32)
        out *= 1.0 / 127.5  # in place: this runs on every training batch
        out -= 1.0
        return out
    raise ValueError(f"input_range={input_range!r} must be 'unit' or 'symmetric'.")


def pad_images(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``[N, H, W, C]`` images evenly on all sides to ``size × size``.

    Fashion-MNIST's 28×28 digits have a black (0) border, so padding to 32×32 adds more of the
    same background without resampling the pixels (unlike a resize).
    """
    n, h, w, c = images.shape
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}×{w} images to {size}×{size}; choose size ≥ {max(h, w)}.")
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(images, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)))

