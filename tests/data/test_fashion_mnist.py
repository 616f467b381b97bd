"""The offline Fashion-MNIST builder on tiny IDX files."""

import gzip

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.data import fashion_mnist
from tests.data.helpers import write_idx


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


def write_good_files(local, rng):
    write_idx(local, "train", rng.integers(0, 256, (6, 28, 28)), np.arange(6) % 10)
    write_idx(local, "t10k", rng.integers(0, 256, (4, 28, 28)), np.arange(4))


def gz(path, payload):
    with gzip.open(path, "wb") as f:
        f.write(payload)


LABELS = "train-labels-idx1-ubyte.gz"
IMAGES = "train-images-idx3-ubyte.gz"
IMAGE_HEADER = b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in (6, 28, 28))
# (file, how it is broken, what the error says)
BAD_FILES = [
    (IMAGES, lambda p: gz(p, IMAGE_HEADER + bytes(5 * 784)),
     "is truncated: its header announces 6"),
    (IMAGES, lambda p: gz(p, b"\x00\x00\x08\x01" + bytes(12 + 6 * 784)), "is not an IDX images"),
    (IMAGES, lambda p: p.write_bytes(b"<html>not found</html>"), "cannot be decompressed"),
    (IMAGES, lambda p: p.write_bytes(p.read_bytes()[:-20]), "cannot be decompressed"),
    (LABELS, lambda p: gz(p, b"\x00\x00\x08\x01" + (6).to_bytes(4, "big") + bytes([1] * 5 + [12])),
     "holds label 12"),
    (LABELS, lambda p: gz(p, b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5)),
     "holds 5 labels for the 6 images"),
]


@pytest.mark.parametrize("name, corrupt, problem", BAD_FILES)
def test_bad_idx_files_name_the_file_and_the_reinstall_command(tmp_path, name, corrupt,
                                                                problem):
    local = tmp_path / "idx"
    local.mkdir()
    write_good_files(local, np.random.default_rng(0))
    corrupt(local / name)
    with pytest.raises(fashion_mnist.DatasetFileError,
                       match=rf"Fashion-MNIST file {local / name} {problem}.*"
                             r"apt-get install --reinstall dataset-fashion-mnist"):
        fashion_mnist.get_builder(data_dir=str(tmp_path / "tfds"), local_dir=str(local))


def test_a_fixed_file_is_used_not_the_cached_copy_of_the_bad_one(tmp_path):
    # TFDS's dl_manager.extract caches the extracted copy by file name, so a bad file used to
    # poison the data_dir: the same error after the file was fixed. The copy is now keyed on
    # the file's content.
    local, data_dir = tmp_path / "idx", str(tmp_path / "tfds")
    local.mkdir()
    rng = np.random.default_rng(0)
    write_good_files(local, rng)
    gz(local / IMAGES, IMAGE_HEADER + bytes(5 * 784))  # one image short
    with pytest.raises(fashion_mnist.DatasetFileError, match="is truncated"):
        fashion_mnist.get_builder(data_dir=data_dir, local_dir=str(local))
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    write_idx(local, "train", images, np.arange(6))  # the reinstalled file
    builder = fashion_mnist.get_builder(data_dir=data_dir, local_dir=str(local))
    assert builder.info.splits["train"].num_examples == 6
    train = tfds.as_numpy(tfds.load("fashion_mnist", split="train", data_dir=data_dir,
                                    batch_size=-1))
    np.testing.assert_array_equal(train["image"][np.argsort(train["label"])][..., 0], images)
