"""Fashion-MNIST through TensorFlow Datasets, offline from Debian's package or online.

Debian's ``dataset-fashion-mnist`` puts the four IDX ``.gz`` files in
``/usr/share/datasets/fashion-mnist/``. They are recompressed, so TFDS's own ``fashion_mnist``
builder rejects them on checksum. :class:`LocalFashionMNIST` is that same builder (same name,
version, features and split sizes) reading the local files instead of downloading, so the data
it prepares is the standard ``fashion_mnist/3.0.1`` dataset in the TFDS ``data_dir`` and
``tfds.load("fashion_mnist")`` reads it like any other. With internet access the standard
download still works (``download=True``).
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist

from jaxgen.data import DEBIAN_DIR

INSTALL_HINT = (
    "Install the files with `apt-get install dataset-fashion-mnist` (as root; the README's "
    "`bash setup.sh` does it), point --config.data.local_dir at a folder holding the four "
    "IDX .gz files, or allow the standard TFDS download with --config.data.download=True "
    "when online."
)
_FILES = {
    "train_data": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_data": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither prepared in the data_dir nor available locally."""


def local_files(local_dir: str = DEBIAN_DIR) -> dict[str, str] | None:
    """Paths of the four IDX files in `local_dir`, or None when any is missing."""
    paths = {k: os.path.join(local_dir, v) for k, v in _FILES.items()}
    return paths if all(os.path.exists(p) for p in paths.values()) else None


def idx_count(path: str) -> int:
    """Number of items in an uncompressed IDX file, read from its header."""
    with open(path, "rb") as f:
        header = f.read(8)
    if len(header) < 8 or header[:2] != b"\x00\x00":
        raise ValueError(f"{path} is not an IDX file (bad header); reinstall the dataset files.")
    return int.from_bytes(header[4:8], "big")


class LocalFashionMNIST(mnist.FashionMNIST, skip_registration=True):
    """TFDS's ``fashion_mnist`` builder reading local IDX files instead of downloading.

    It keeps the registered name, so the prepared dataset lands in
    ``<data_dir>/fashion_mnist/<version>/`` and is read back by the standard builder.
    """

    name = "fashion_mnist"

    def __init__(self, *, local_dir: str = DEBIAN_DIR, **kwargs):
        self._local_dir = local_dir
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        paths = local_files(self._local_dir)
        if paths is None:
            raise DatasetNotFoundError(
                f"Fashion-MNIST IDX files not found in {self._local_dir}. {INSTALL_HINT}"
            )
        extracted = dl_manager.extract(paths)
        return [
            tfds.core.SplitGenerator(
                name=split,
                gen_kwargs=dict(
                    num_examples=idx_count(extracted[f"{prefix}_labels"]),
                    data_path=extracted[f"{prefix}_data"],
                    label_path=extracted[f"{prefix}_labels"],
                ),
            )
            for split, prefix in ((tfds.Split.TRAIN, "train"), (tfds.Split.TEST, "test"))
        ]


def get_builder(
    *, data_dir: str | None = None, local_dir: str = DEBIAN_DIR, download: bool = False
) -> tfds.core.DatasetBuilder:
    """Return a prepared ``fashion_mnist`` builder, preparing it if needed.

    Order: already prepared in ``data_dir`` → prepare from the IDX files in ``local_dir`` →
    the standard TFDS download when ``download`` is True → a :class:`DatasetNotFoundError`
    that names the install command.
    """
    builder = tfds.builder("fashion_mnist", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    if local_files(local_dir) is not None:
        LocalFashionMNIST(data_dir=data_dir, local_dir=local_dir).download_and_prepare()
        return tfds.builder("fashion_mnist", data_dir=data_dir)
    if download:
        builder.download_and_prepare()
        return builder
    raise DatasetNotFoundError(
        f"Fashion-MNIST is not prepared in the TFDS data_dir ({builder.data_dir}) and its "
        f"IDX files are not in {local_dir}. {INSTALL_HINT}"
    )
