"""Where examples come from: a TFDS dataset (sharded per host) or deterministic toy images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from jaxgen.data import fashion_mnist
from jaxgen.data.pipeline import Batch, synthetic_images

SOURCES = ("tfds", "synthetic")


def get_tfds_builder(
    name: str, *, data_dir: str | None, local_dir: str, download: bool
) -> tfds.core.DatasetBuilder:
    """A prepared TFDS builder; Fashion-MNIST can be prepared offline from Debian's files."""
    if name == "fashion_mnist":
        return fashion_mnist.get_builder(data_dir=data_dir, local_dir=local_dir, download=download)
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        if not download:
            raise fashion_mnist.DatasetNotFoundError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir}; prepare it with "
                f"`tfds build {name} --data_dir=...` or pass --config.data.download=True."
            )
        builder.download_and_prepare()
    return builder


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
    Only the listed shards are read from disk.
    """
    if source == "synthetic":
        per_shard = synthetic_examples // num_shards
        split_seed = {"train": 0, "test": 1}.get(split.split("[")[0], 2)
        return [
            synthetic_images(per_shard, image_shape, seed=(seed, split_seed, i))
            for i in shard_ids
        ]
    if source != "tfds":
        raise ValueError(f"unknown data source {source!r}; choose one of {SOURCES}.")
    builder = get_tfds_builder(name, data_dir=data_dir, local_dir=local_dir, download=download)
    subsplits = tfds.even_splits(split, n=num_shards)
    shards = []
    for i in shard_ids:
        # Large finite batches (not batch_size=-1, which aborts under tfds.testing.mock_data).
        chunks = list(tfds.as_numpy(builder.as_dataset(split=subsplits[i], batch_size=10_000)))
        shards.append({k: np.concatenate([c[k] for c in chunks]) for k in ("image", "label")})
    return shards
