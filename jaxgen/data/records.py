"""Random-access record sources: a dataset split as a sequence, read one record at a time.

A *source* is what grain calls a random-access data source: ``len(source)`` and
``source[i]`` → ``{"image": uint8 [H, W, C] as stored (any size, C = 1…4), "label"?: int}``.
Nothing is read before it is indexed, so a source of a million files costs its file list, not
its pixels. The sources here:

* :class:`FolderSource` — image files (PNG, JPEG, WebP, BMP, GIF, TIFF; any mode Pillow reads)
  under a folder, nested; labels from class subfolders (:func:`scan_folder`).
* :class:`ArraySource` — images already in memory (toy images, Fashion-MNIST classes, a TFDS
  split prepared as TFRecord, which only reads sequentially).
* :class:`RecordRange` — a contiguous range ``[start, stop)`` of any source: a data shard.
  TFDS datasets prepared as ArrayRecord are read through ``builder.as_data_source`` and cut
  into shards this way (:func:`jaxgen.data.sources.tfds_shards`).

:func:`fit_image` turns a stored image into the run's shape (resize the shorter side and
centre-crop, or pad; grey ↔ RGB); :func:`read_example` reads one record and converts it, or
reports it bad.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxgen.data import image_io
from jaxgen.validation import ConfigError

# Every extension Pillow decodes that image folders commonly hold (lower-case).
FOLDER_EXTENSIONS = image_io.IMAGE_EXTENSIONS
RESIZE_MODES = ("crop", "pad", "squash")


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What a split holds, found from the data (not from config constants).

    Attributes:
      image_shape: ``(H, W, C)`` of the stored images; ``None`` in H/W when sizes vary.
      class_names: the classes, in label order; empty when the data has no labels.
    """

    image_shape: tuple[int | None, int | None, int]
    class_names: tuple[str, ...] = ()


class ArraySource:
    """Images (and labels) held in memory: ``{"image": images[i], "label": labels[i]}``."""

    def __init__(self, images, labels=None, *, name: str = "arrays"):
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        out = {"image": np.asarray(self.images[i])}
        if self.labels is not None:
            out["label"] = int(self.labels[i])
        return out

    def describe(self, i: int) -> str:
        return f"record {i} of {self.name}"

    def take(self, indices: np.ndarray, *, size: int, channels: int, resize: str):
        """The examples `indices` at the run's shape by array indexing, when that needs no
        per-image work (same channels; same size, or zero-padding to it); else None."""
        images = self.images
        if type(self).__getitem__ is not ArraySource.__getitem__:  # records made otherwise
            return None
        if not isinstance(images, np.ndarray) or images.ndim != 4 or (
                images.shape[-1] != channels):
            return None
        h, w = images.shape[1:3]
        if size and (h, w) != (size, size) and not (resize == "pad" and max(h, w) <= size):
            return None
        out = {"image": images[indices]}
        if size and (h, w) != (size, size):
            top, left = (size - h) // 2, (size - w) // 2
            out["image"] = np.pad(out["image"], ((0, 0), (top, size - h - top),
                                                 (left, size - w - left), (0, 0)))
        if self.labels is not None:
            out["label"] = np.asarray(self.labels)[indices].astype(np.int32)
        return out


class RecordRange:
    """Records ``start … stop − 1`` of `source` as a source of their own (one data shard)."""

    def __init__(self, source, start: int, stop: int):
        if not 0 <= start <= stop <= len(source):
            raise ValueError(f"range [{start}, {stop}) is outside a source of {len(source)}.")
        self.source, self.start, self.stop = source, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.source[self.start + i]

    def describe(self, i: int) -> str:
        inner = getattr(self.source, "describe", None)
        return inner(self.start + i) if inner else f"record {self.start + i}"

    def take(self, indices: np.ndarray, **reading):
        inner = getattr(self.source, "take", None)
        return inner(np.asarray(indices) + self.start, **reading) if inner else None


def contiguous_range(n: int, num_shards: int, shard_id: int) -> tuple[int, int]:
    """Shard `shard_id` of `n` records cut into `num_shards` contiguous shards (sizes within one
    of each other)."""
    return shard_id * n // num_shards, (shard_id + 1) * n // num_shards


@dataclasses.dataclass(frozen=True)
class FolderListing:
    """The image files of a folder split, relative to ``root``, with class ids."""

    root: str
    files: np.ndarray  # bytes [N] (relative paths: 1M files cost ~60 MB, not a list of str)
    labels: np.ndarray | None  # int32 [N], or None without class subfolders
    class_names: tuple[str, ...]


def _walk(folder: str) -> list[str]:
    """Image files under `folder` (recursive), as sorted paths relative to it."""
    found = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(folder, rel)) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                path = os.path.join(rel, e.name)
                if e.is_dir():
                    stack.append(path)
                elif e.name.lower().endswith(FOLDER_EXTENSIONS):
                    found.append(path)
    return sorted(found)


def scan_folder(folder: str, *, class_names: Sequence[str] | None = None,
                setting: str = "data.path") -> FolderListing:
    """List the images under `folder`; class subfolders give labels.

    When every image lies inside a subfolder of `folder`, the sorted subfolder names are the
    classes (label = position); otherwise the images have no labels. `class_names` (e.g. the
    train split's) fixes the classes instead, so a test folder missing a class keeps the ids.

    Raises:
      FileNotFoundError: `folder` is missing, not a folder, or holds no image file.
    """
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{setting}: {folder} does not exist.")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{setting}: {folder} is a file, not a folder of images.")
    files = _walk(folder)
    if not files:
        raise FileNotFoundError(
            f"{setting}: {folder} holds no image files ({', '.join(FOLDER_EXTENSIONS)}), "
            "nested or not.")
    tops = [f.split(os.sep, 1)[0] if os.sep in f else None for f in files]
    labels = None
    names: tuple[str, ...] = ()
    if all(t is not None for t in tops):
        names = tuple(class_names) if class_names is not None else tuple(sorted(set(tops)))
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(tops) - set(index))
        if unknown:
            raise ConfigError(f"{folder} has class folders {unknown[:3]} that the training "
                             f"split does not have (its classes: {list(names)[:5]}...).")
        labels = np.asarray([index[t] for t in tops], np.int32)
    elif class_names:
        raise ConfigError(f"{folder} has images outside class subfolders, but the training "
                         "split has classes; put every image in a class folder.")
    return FolderListing(folder, np.asarray([f.encode() for f in files]), labels, names)


def split_listing(listing: FolderListing, test_fraction: float) -> dict[str, FolderListing]:
    """``{"train", "test"}`` of one listing: a file is a test file when the CRC-32 of its
    relative path falls in the lowest `test_fraction` of its range — deterministic, and a
    file keeps its split when others are added or removed."""
    hashed = np.asarray([zlib.crc32(f) for f in listing.files], np.uint64)
    test = hashed < np.uint64(round(test_fraction * 2**32))
    out = {}
    for split, keep in (("train", ~test), ("test", test)):
        if not keep.any():
            raise ConfigError(
                f"data.test_fraction={test_fraction} leaves no {split} image among the "
                f"{len(listing.files)} files of {listing.root}; change data.test_fraction or "
                "make train/ and test/ folders.")
        out[split] = FolderListing(listing.root, listing.files[keep],
                                   None if listing.labels is None else listing.labels[keep],
                                   listing.class_names)
    return out


class FolderSource:
    """Image files of a :class:`FolderListing`, decoded when indexed (:func:`read_file`)."""

    def __init__(self, listing: FolderListing):
        self.listing = listing

    def __len__(self) -> int:
        return len(self.listing.files)

    def path(self, i: int) -> str:
        return os.path.join(self.listing.root, self.listing.files[i].decode())

    def __getitem__(self, i: int) -> dict:
        out = {"image": read_file(self.path(i))}
        if self.listing.labels is not None:
            out["label"] = int(self.listing.labels[i])
        return out

    def describe(self, i: int) -> str:
        return self.path(i)


def read_file(path: str) -> np.ndarray:
    """One image file as uint8 ``[H, W, 1 or 3]``: grey modes stay grey, others become RGB
    (the channel count of the data is then set by :func:`fit_image`)."""
    return image_io.read_image(path, channels=None)


def fit_image(image: np.ndarray, *, size: int, channels: int, resize: str) -> np.ndarray:
    """A stored image ``[H, W, C]`` → uint8 ``[size, size, channels]`` (``size`` 0: as is).

    ``resize="crop"``: scale so the shorter side is `size` (bicubic; antialiased when shrinking)
    and cut the centre square. ``"pad"``: scale down only when a side exceeds `size`, then
    zero-pad evenly to a square (Fashion-MNIST 28 → 32 adds border, no resampling).
    ``"squash"``: resize to the square, ignoring the aspect ratio (CycleGAN's reference
    ``Resize([size, size])``).
    """
    image = image_io.convert_channels(np.asarray(image), channels)
    if not size:
        return image
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    if resize == "squash":
        return image_io.resize_square(image, size)
    if resize == "crop":
        scale = size / min(h, w)
    elif resize == "pad":
        scale = min(1.0, size / max(h, w))
    else:
        raise ValueError(f"resize={resize!r} must be one of {RESIZE_MODES}.")
    if scale != 1.0:
        nh, nw = max(size if resize == "crop" else 1, round(h * scale)), \
            max(size if resize == "crop" else 1, round(w * scale))
        squeeze = image.shape[-1] == 1
        pil = Image.fromarray(image[..., 0] if squeeze else image)
        image = np.asarray(pil.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0))
        image = image[..., None] if squeeze else image
        h, w = nh, nw
    if resize == "crop":
        top, left = (h - size) // 2, (w - size) // 2
        return image[top:top + size, left:left + size]
    top, left = (size - h) // 2, (size - w) // 2
    return np.pad(image, ((top, size - h - top), (left, size - w - left), (0, 0)))


def first_image(source, tries: int = 32) -> np.ndarray:
    """The first readable stored image of `source` (skipping up to `tries` bad records)."""
    errors = []
    for i in range(min(len(source), tries)):
        try:
            return np.asarray(source[i]["image"])
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001
            errors.append(f"{getattr(source, 'describe', str)(i)}: {e}")
    raise ConfigError(f"none of the first {len(errors)} records can be read: {errors[0]}")


class BadRecord(Exception):
    """A record that could not be read or converted (carries where and why)."""

    def __init__(self, where: str, why: str):
        super().__init__(f"{where}: {why}")
        self.where, self.why = where, why


def read_example(source, i: int, *, size: int, channels: int, resize: str) -> dict:
    """Record `i` of `source` at the run's shape (:func:`fit_image`); :class:`BadRecord` when it
    cannot be read (a corrupt, truncated, vanished or undecodable file)."""
    try:
        record = source[i]
        return {**record, "image": fit_image(record["image"], size=size, channels=channels,
                                             resize=resize)}
    except (KeyboardInterrupt, SystemExit, MemoryError, IndexError):
        raise
    except Exception as e:  # noqa: BLE001 (any decoder's error is a bad record, counted)
        describe = getattr(source, "describe", None)
        where = describe(i) if describe else f"record {i}"
        raise BadRecord(where, f"{type(e).__name__}: {e}".splitlines()[0][:300]) from None
