"""Where examples come from: a TFDS dataset (sharded per host) or deterministic toy images."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import IMAGE_SOURCES, fashion_mnist
from jaxgen.data.pipeline import Batch, synthetic_images


def get_tfds_builder(
    name: str, *, data_dir: str | None, local_dir: str, download: bool
) -> tfds.core.DatasetBuilder:
    """A prepared TFDS builder; Fashion-MNIST can be prepared offline from Debian's files."""
    if name == "fashion_mnist":
        return fashion_mnist.get_builder(data_dir=data_dir, local_dir=local_dir, download=download)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        import difflib

        close = difflib.get_close_matches(name.split("/")[0].split(":")[0],
                                          tfds.list_builders(), n=3)
        raise fashion_mnist.DatasetNotFoundError(
            f"data.name={name!r} is neither a TFDS dataset nor prepared in "
            f"{data_dir or 'the default TFDS data_dir'}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + "; tfds.list_builders() lists the datasets TFDS knows.") from None
    if not builder.is_prepared():
        if not download:
            raise fashion_mnist.DatasetNotFoundError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir}; prepare it with "
                f"`tfds build {name} --data_dir=...` or pass --config.data.download=True."
            )
        builder.download_and_prepare()
    return builder


def _rebuild_hint(name: str) -> str:
    if name == "fashion_mnist":
        return "the next run rebuilds it from the local IDX files"
    return f"`tfds build {name} --data_dir=...`, or a run with --config.data.download=True"


def _op_message(error) -> str:
    """TensorFlow's error text without the op name decorations: 'corrupted record at 18680'."""
    text = re.sub(r"\{\{.*?\}\}\s*", "", error.message.splitlines()[0])
    return re.sub(r"\s*\[Op:.*$", "", text).strip()


def damaged_files(builder: tfds.core.DatasetBuilder, split: str) -> list[tuple[str, str]]:
    """The record files of a prepared `split` that are missing, corrupt or truncated.

    Reads every record of the split's files (no parsing) and compares the count with the
    shard lengths TFDS recorded when it prepared them.

    Returns:
      ``[(path, what is wrong), ...]``, empty when every file reads back whole.
    """
    import tensorflow as tf

    info = builder.info.splits[split.split("[")[0]]
    problems = []
    for filename, expected in zip(info.filenames, info.shard_lengths, strict=True):
        path = os.path.join(builder.data_dir, filename)
        if not os.path.exists(path):
            problems.append((path, "is missing"))
            continue
        try:
            count = sum(int(b.shape[0]) for b in tf.data.TFRecordDataset(path).batch(4096))
        except tf.errors.OpError as e:
            problems.append((path, f"is corrupt ({_op_message(e)})"))
            continue
        if count != expected:
            problems.append((path, f"is truncated: it holds {count} of its {expected} records"))
    return problems


@contextlib.contextmanager
def named_file_errors(builder: tfds.core.DatasetBuilder, name: str, split: str) -> Iterator[None]:
    """Turn TensorFlow's read errors on a damaged prepared dataset into one that names the file.

    A truncated, corrupt or missing TFRecord file in the TFDS data_dir surfaces, deep in a
    ``tf.data`` iterator, as a ``DataLossError``, ``FailedPreconditionError`` or
    ``NotFoundError``. Around the code that reads `split`, such an error becomes a
    :class:`fashion_mnist.DatasetFileError` naming the damaged file and the fix (delete the
    dataset folder and prepare it again) — when :func:`damaged_files` finds one; otherwise the
    original error propagates unchanged.
    """
    import tensorflow as tf

    try:
        yield
    except (tf.errors.DataLossError, tf.errors.FailedPreconditionError, tf.errors.NotFoundError,
            tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError):
        damaged = damaged_files(builder, split)
        if not damaged:
            raise
        path, problem = damaged[0]
        more = f" (and {len(damaged) - 1} more damaged file(s))" if len(damaged) > 1 else ""
        raise fashion_mnist.DatasetFileError(
            f"TFDS dataset {name}: file {path} {problem}{more}. Delete the folder "
            f"{builder.data_dir} and prepare the dataset again ({_rebuild_hint(name)})."
        ) from None


def load_image_shards(
    *,
    source: str,
    name: str,
    split: str,
    num_shards: int,
    shard_ids: Sequence[int],
    data_dir: str | None = None,
    local_dir: str = fashion_mnist.DEBIAN_DIR,
    download: bool = False,
    synthetic_examples: int = 256,
    image_shape: Sequence[int] = (28, 28, 1),
    seed: int = 0,
) -> list[Batch]:
    """Load the shards `shard_ids` of `split` (out of `num_shards` even shards) into memory.

    Returns one dict per shard with ``"image"`` (uint8 [N, H, W, C]) and ``"label"`` ([N]).
    Only the listed shards are read from disk. A damaged file of a prepared TFDS dataset is a
    :class:`fashion_mnist.DatasetFileError` naming it (:func:`named_file_errors`).
    """
    if source == "synthetic":
        per_shard = synthetic_examples // num_shards
        split_seed = {"train": 0, "test": 1}.get(split.split("[")[0], 2)
        return [
            synthetic_images(per_shard, image_shape, seed=(seed, split_seed, i))
            for i in shard_ids
        ]
    if source != "tfds":
        raise ValueError(f"unknown data source {source!r}; choose one of {IMAGE_SOURCES}.")
    builder = get_tfds_builder(name, data_dir=data_dir, local_dir=local_dir, download=download)
    subsplits = tfds.even_splits(split, n=num_shards)
    shards = []
    for i in shard_ids:
        with named_file_errors(builder, name, split):
            # Large finite batches (not batch_size=-1, which aborts under tfds.testing.mock_data).
            chunks = list(tfds.as_numpy(builder.as_dataset(split=subsplits[i],
                                                           batch_size=10_000)))
        shards.append({k: np.concatenate([c[k] for c in chunks]) for k in ("image", "label")})
    return shards
