"""Paired sources: TFDS shards (damaged prepared files named) and synthetic images."""

import glob
import os
import shutil

import numpy as np
import pytest

from jaxgen.data import fashion_mnist, sources
from tests.data.helpers import write_idx


def test_unknown_source_is_an_error():
    with pytest.raises(ValueError, match="unknown data source 'csv'"):
        sources.load_image_shards(source="csv", name="", split="train", num_shards=1,
                                  shard_ids=[0])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A Fashion-MNIST data_dir prepared from tiny IDX files (40 train, 4 test examples)."""
    root = tmp_path_factory.mktemp("prepared")
    local = root / "idx"
    local.mkdir()
    rng = np.random.default_rng(0)
    write_idx(local, "train", rng.integers(0, 256, (40, 28, 28)), np.arange(40) % 10)
    write_idx(local, "t10k", rng.integers(0, 256, (4, 28, 28)), np.arange(4))
    fashion_mnist.get_builder(data_dir=str(root / "tfds"), local_dir=str(local))
    return root


def load(data_dir, local):
    return sources.load_image_shards(source="tfds", name="fashion_mnist", split="train",
                                     num_shards=1, shard_ids=[0], data_dir=str(data_dir),
                                     local_dir=str(local))


def damage(data_dir, how):
    (path,) = glob.glob(os.path.join(data_dir, "fashion_mnist", "*", "*-train.tfrecord*"))
    data = bytearray(open(path, "rb").read())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        data[len(data) // 2] ^= 0xFF
    if how == "missing":
        os.remove(path)
    else:
        open(path, "wb").write(bytes(data))
    return path


@pytest.mark.parametrize("how, problem", [
    ("truncated", r"is truncated: it holds \d+ of its 40 records"),
    ("corrupt", r"is corrupt \(corrupted record at \d+\)"),
    ("missing", "is missing"),
])
def test_damaged_tfrecord_names_the_file_and_the_fix(prepared, tmp_path, how, problem):
    data_dir = tmp_path / "tfds"
    shutil.copytree(prepared / "tfds", data_dir)
    assert len(load(data_dir, prepared / "idx")[0]["label"]) == 40
    path = damage(data_dir, how)
    folder = os.path.dirname(path)
    with pytest.raises(fashion_mnist.DatasetFileError,
                       match=rf"TFDS dataset fashion_mnist: file {path} {problem}\. Delete the "
                             rf"folder {folder} and prepare the dataset again"):
        load(data_dir, prepared / "idx")
    shutil.rmtree(folder)  # as the message says; the next load rebuilds it
    assert len(load(data_dir, prepared / "idx")[0]["label"]) == 40
