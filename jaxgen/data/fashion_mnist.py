"""Fashion-MNIST through TensorFlow Datasets, offline from Debian's package or online.

Debian's ``dataset-fashion-mnist`` puts the four IDX ``.gz`` files in
``/usr/share/datasets/fashion-mnist/``. They are recompressed, so TFDS's own ``fashion_mnist``
builder rejects them on checksum. :class:`LocalFashionMNIST` is that same builder (same name,
version, features and split sizes) reading the local files instead of downloading, so the data
it prepares is the standard ``fashion_mnist/3.0.1`` dataset in the TFDS ``data_dir`` and
``tfds.load("fashion_mnist")`` reads it like any other. With internet access the standard
download still works (``download=True``).

Each local ``.gz`` file is decompressed into ``<data_dir>/downloads/extracted/`` under a name
derived from its SHA-256 (:func:`extract_idx`), so a reinstalled or fixed file is used rather
than the copy of a bad one, and is checked (:func:`check_idx`) before TFDS reads it: a file that
is not gzip, truncated, of the wrong IDX type, or inconsistent is a :class:`DatasetFileError`
naming the file and ``apt-get install --reinstall dataset-fashion-mnist``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import mnist

from jaxgen.data import DEBIAN_DIR

INSTALL_HINT = (
    "Install the files with `apt-get install dataset-fashion-mnist` (as root; the README's "
    "`bash setup.sh` does it), point --config.data.local_dir at a folder holding the four "
    "IDX .gz files, or allow the standard TFDS download with --config.data.download=True "
    "when online."
)
REINSTALL_HINT = (
    "Reinstall it with `apt-get install --reinstall dataset-fashion-mnist` (as root), or "
    "replace it with a good copy of the upstream file."
)
_FILES = {
    "train_data": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_data": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# IDX headers (LeCun et al.): magic 0x0000 08 <ndim> (unsigned bytes), then ndim big-endian
# uint32 sizes. Images: [N, 28, 28]; labels: [N] with classes 0…9.
_IMAGE_MAGIC, _LABEL_MAGIC = b"\x00\x00\x08\x03", b"\x00\x00\x08\x01"
_SIDE, _NUM_CLASSES = 28, 10


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither prepared in the data_dir nor available locally."""


class DatasetFileError(ValueError):
    """A dataset file is truncated, corrupt or of the wrong format; the message says which
    file and what to do."""


def local_files(local_dir: str = DEBIAN_DIR) -> dict[str, str] | None:
    """Paths of the four IDX files in `local_dir`, or None when any is missing."""
    paths = {k: os.path.join(local_dir, v) for k, v in _FILES.items()}
    return paths if all(os.path.exists(p) for p in paths.values()) else None


def _file_error(source: str, problem: str) -> DatasetFileError:
    return DatasetFileError(f"Fashion-MNIST file {source} {problem}. {REINSTALL_HINT}")


def check_idx(path: str, *, labels: bool, source: str | None = None) -> int:
    """Validate an uncompressed IDX file; return its number of items.

    Checks the magic number, the image side (28) and that the file holds exactly the items
    its header announces (labels: each in 0…9).

    Args:
      path: the uncompressed IDX file.
      labels: True for a labels file (``idx1``), False for images (``idx3``).
      source: the file to name in errors (e.g. the ``.gz`` it came from); default `path`.

    Raises:
      DatasetFileError: naming `source` and the reinstall command.
    """
    source = source or path
    magic, header_size = (_LABEL_MAGIC, 8) if labels else (_IMAGE_MAGIC, 16)
    with open(path, "rb") as f:
        header = f.read(header_size)
    kind = "labels (idx1)" if labels else "images (idx3)"
    if len(header) < header_size or header[:4] != magic:
        found = header[:4].hex() or "empty"
        raise _file_error(source, f"is not an IDX {kind} file (magic {found}, expected "
                                  f"{magic.hex()})")
    count = int.from_bytes(header[4:8], "big")
    item = 1
    if not labels:
        rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
        if (rows, cols) != (_SIDE, _SIDE):
            raise _file_error(source, f"holds {rows}×{cols} images, not {_SIDE}×{_SIDE}")
        item = _SIDE * _SIDE
    size, expected = os.path.getsize(path), header_size + count * item
    if size != expected:
        raise _file_error(source, f"is {'truncated' if size < expected else 'too long'}: its "
                                  f"header announces {count} items ({expected} bytes "
                                  f"uncompressed), the file has {size}")
    if labels:
        values = np.fromfile(path, np.uint8, offset=header_size)
        if values.size and values.max() >= _NUM_CLASSES:
            raise _file_error(source, f"holds label {values.max()}, outside 0…{_NUM_CLASSES - 1}")
    return count


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_idx(gz_path: str, extract_dir: str, *, labels: bool) -> tuple[str, int]:
    """Decompress a ``.gz`` IDX file into `extract_dir`, cached by its content; validate it.

    The copy is named after the SHA-256 of the ``.gz`` file, not its name, so a fixed or
    reinstalled file is extracted afresh instead of reusing the copy of a bad one (TFDS's
    ``dl_manager.extract`` caches by file name). A file that fails the checks is never cached.

    Returns:
      ``(path of the uncompressed IDX file, number of items)``.

    Raises:
      DatasetFileError: the ``.gz`` is not gzip, is truncated, or holds a bad IDX file; the
        message names `gz_path` and the reinstall command.
    """
    name = os.path.basename(gz_path).removesuffix(".gz")
    out = os.path.join(extract_dir, f"{_sha256(gz_path)[:16]}.{name}")
    if not os.path.exists(out):
        os.makedirs(extract_dir, exist_ok=True)
        tmp = f"{out}.incomplete.{os.getpid()}"
        try:
            with gzip.open(gz_path, "rb") as src, open(tmp, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    dst.write(block)
            check_idx(tmp, labels=labels, source=gz_path)
            os.replace(tmp, out)
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise _file_error(gz_path, f"cannot be decompressed ({e})") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return out, check_idx(out, labels=labels, source=gz_path)


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
        extract_dir = os.path.join(os.fspath(dl_manager.download_dir), "extracted")
        generators = []
        for split, prefix in ((tfds.Split.TRAIN, "train"), (tfds.Split.TEST, "test")):
            data, num_images = extract_idx(paths[f"{prefix}_data"], extract_dir, labels=False)
            labels, num_labels = extract_idx(paths[f"{prefix}_labels"], extract_dir,
                                             labels=True)
            if num_images != num_labels:
                raise _file_error(paths[f"{prefix}_labels"],
                                  f"holds {num_labels} labels for the {num_images} images of "
                                  f"{paths[f'{prefix}_data']}")
            generators.append(tfds.core.SplitGenerator(
                name=split,
                gen_kwargs=dict(num_examples=num_images, data_path=data, label_path=labels),
            ))
        return generators


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
