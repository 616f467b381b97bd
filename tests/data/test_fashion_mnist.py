"""The offline Fashion-MNIST builder on tiny IDX files."""

import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.data import fashion_mnist


def write_idx(directory, prefix, images, labels):
    n = len(labels)
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in (n, 28, 28)))
        f.write(images.astype(np.uint8).tobytes())
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


def test_local_builder_prepares_the_standard_dataset(tmp_path):
    rng = np.random.default_rng(0)
    local = tmp_path / "idx"
    local.mkdir()
    train_images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    write_idx(local, "train", train_images, np.arange(6) % 10)
    write_idx(local, "t10k", rng.integers(0, 256, (4, 28, 28)), np.arange(4))
    data_dir = str(tmp_path / "tfds")
    builder = fashion_mnist.get_builder(data_dir=data_dir, local_dir=str(local))
    assert builder.info.splits["train"].num_examples == 6
    # The prepared data is read back by TFDS's own registered builder.
    train = tfds.as_numpy(tfds.load("fashion_mnist", split="train", data_dir=data_dir,
                                    batch_size=-1))
    np.testing.assert_array_equal(np.sort(train["label"]), np.sort(np.arange(6) % 10))
    order = np.argsort(train["label"])
    np.testing.assert_array_equal(train["image"][order][..., 0], train_images[np.argsort(
        np.arange(6) % 10)])


def test_missing_files_name_the_install_command(tmp_path):
    with pytest.raises(fashion_mnist.DatasetNotFoundError,
                       match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.get_builder(data_dir=str(tmp_path / "tfds"), local_dir=str(tmp_path))
