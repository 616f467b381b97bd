"""TFDS datasets as record sources (sharded per process): random access when prepared as
ArrayRecord, in memory when prepared as TFRecord (which only reads sequentially).

Only this module (and :mod:`fashion_mnist`) imports TFDS, and TensorFlow under it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import fashion_mnist
from jaxgen.data.records import ArraySource, RecordRange, SourceInfo, contiguous_range
from jaxgen.validation import ConfigError


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
                f"`tfds build {name} --file_format=array_record --data_dir=...` (ArrayRecord: "
                "streamed by random access) or pass --config.data.download=True.")
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


def _feature_keys(builder, name: str, image_key: str, label_key: str) -> tuple[str, str | None]:
    """The image feature and the label feature (None: no labels) of a TFDS dataset: the named
    ones, or found from its features (the first ``Image``; ``label`` or the first
    ``ClassLabel``); ``label_key="none"`` reads no labels."""
    features = builder.info.features
    kinds = {k: type(v).__name__ for k, v in features.items()}
    listing = ", ".join(f"{k} ({t})" for k, t in kinds.items())
    if image_key:
        if image_key not in features:
            raise ConfigError(f"data.image_key={image_key!r} is not a feature of {name}; its "
                             f"features: {listing}.")
    else:
        images = [k for k, v in features.items() if isinstance(v, tfds.features.Image)]
        if not images:
            raise ConfigError(f"TFDS dataset {name} has no image feature; its features: "
                             f"{listing}. Name one with --config.data.image_key.")
        image_key = images[0]
    shape = tuple(getattr(features[image_key], "shape", None) or ())
    if len(shape) != 3:  # a Tensor or Text feature named as the image
        raise ConfigError(f"data.image_key={image_key!r} of {name} has shape {shape}, not an "
                         f"image's (H, W, C); its features: {listing}.")
    if label_key == "none":
        return image_key, None
    if label_key:
        if label_key not in features:
            raise ConfigError(f"data.label_key={label_key!r} is not a feature of {name}; its "
                             f"features: {listing}.")
        return image_key, label_key
    labels = [k for k, v in features.items() if isinstance(v, tfds.features.ClassLabel)]
    return image_key, ("label" if "label" in labels else (labels[0] if labels else None))


class FeatureSource:
    """A TFDS data source's records reduced to ``{"image", "label"?}``."""

    def __init__(self, source, image_key: str, label_key: str | None, name: str):
        self.source, self.image_key, self.label_key, self.name = (source, image_key,
                                                                  label_key, name)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        record = self.source[i]
        out = {"image": np.asarray(record[self.image_key])}
        if self.label_key is not None:
            out["label"] = int(record[self.label_key])
        return out

    def describe(self, i: int) -> str:
        return f"record {i} of {self.name}"


def is_array_record(builder) -> bool:
    return str(getattr(builder.info, "file_format", "")).lower().endswith("array_record")


def tfds_shards(
    *,
    name: str,
    split: str,
    num_shards: int,
    shard_ids: Sequence[int],
    data_dir: str | None = None,
    local_dir: str = fashion_mnist.DEBIAN_DIR,
    download: bool = False,
    image_key: str = "",
    label_key: str = "",
) -> tuple[list, SourceInfo]:
    """The shards `shard_ids` (of `num_shards`) of a TFDS split as record sources, and what the
    split holds (image shape, class names) from the dataset's features.

    Prepared as ArrayRecord: ``builder.as_data_source`` cut into contiguous ranges, read by
    random access (nothing held). Prepared as TFRecord: this process's shards
    (``tfds.even_splits``) are read into memory once — fine for Fashion-MNIST-sized data; for
    more, prepare the dataset as ArrayRecord (the log line says how). A damaged file of a
    TFRecord dataset is a :class:`fashion_mnist.DatasetFileError` naming it.
    """
    builder = get_tfds_builder(name, data_dir=data_dir, local_dir=local_dir, download=download)
    image_key, label_key = _feature_keys(builder, name, image_key, label_key)
    features = builder.info.features
    shape = tuple(features[image_key].shape)
    names = tuple(features[label_key].names) if label_key and hasattr(
        features[label_key], "names") else ()
    info = SourceInfo(image_shape=shape, class_names=names)
    if builder.info.splits and split not in builder.info.splits:  # (empty under mock_data)
        raise ConfigError(f"TFDS dataset {name} has no split {split!r}; its splits: "
                         f"{', '.join(builder.info.splits)}.")
    if is_array_record(builder):
        whole = FeatureSource(builder.as_data_source(split=split), image_key, label_key,
                              f"{name} {split}")
        if len(whole) < num_shards:
            raise ConfigError(f"{name} {split} holds {len(whole)} records, fewer than the "
                             f"{num_shards} data shards.")
        return [RecordRange(whole, *contiguous_range(len(whole), num_shards, i))
                for i in shard_ids], info
    subsplits = tfds.even_splits(split, n=num_shards)
    fixed = None not in shape
    keys = [image_key] + ([label_key] if label_key else [])
    shards = []
    for i in shard_ids:
        with named_file_errors(builder, name, split):
            ds = builder.as_dataset(split=subsplits[i]).map(lambda ex: {k: ex[k] for k in keys})
            if fixed:  # large finite batches (batch_size=-1 aborts under tfds mock data)
                chunks = list(tfds.as_numpy(ds.batch(10_000)))
                arrays = {k: np.concatenate([c[k] for c in chunks]) for k in keys}
            else:  # sizes vary: one array per image
                rows = list(tfds.as_numpy(ds))
                arrays = {k: [r[k] for r in rows] for k in keys}
        shards.append(ArraySource(arrays[image_key], arrays[label_key] if label_key else None,
                                  name=f"{name} {subsplits[i]}"))
    return shards, info
