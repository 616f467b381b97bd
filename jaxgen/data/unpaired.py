"""Unpaired two-domain data for CycleGAN (Zhu et al. 2017, arXiv:1703.10593).

Convention (DESIGN.md): X = photos (domain ``"x"``), Y = Monet paintings (domain ``"y"``);
G: X → Y, F: Y → X. Every source returns this process's shards of both domains as uint8
``[N, H, W, C]`` arrays, ``{"x": [shard, ...], "y": [shard, ...]}``; the domains may have
different sizes. Which stored domain (A or B) becomes X:

- ``"tfds"`` — TFDS ``cycle_gan/<a>2<b>`` (default ``monet2photo``) builds split ``trainA`` /
  ``testA`` from the archive's ``trainA/`` (<a>: Monet, 1,072 train) and ``trainB`` / ``testB``
  from ``trainB/`` (<b>: photos, 6,287 train). X = photos, so **X = B, Y = A**;
  ``swap_domains=True`` gives X = A, Y = B.
- ``"folders"`` — a root with ``trainA/``, ``trainB/``, ``testA/``, ``testB/`` image folders.
  As in the reference implementation (G maps A → B): **X = A/, Y = B/**; ``swap_domains=True``
  gives X = B/, Y = A/. The Berkeley ``monet2photo.zip`` has Monet in A/, so X = photos needs
  ``swap_domains=True`` there.
- ``"fashion_mnist"`` — the offline demo: **X = class ``class_x`` (7, sneakers), Y = class
  ``class_y`` (9, ankle boots)** of Fashion-MNIST, zero-padded 28 → 32. Different classes are
  disjoint sets of images, so the domains share no example; the loader's independent shuffles
  remove any pairing by position.

Images are stored at one square size per load (``load_size``, bicubic when an image differs),
so the reference's deterministic resize happens once at load time and training only crops and
flips. Load the training split at ``load_size`` (286 for 256 crops) and the test split at
``crop_size`` (the reference evaluates with load_size = crop_size, no crop, no flip).

Training batches of these domains: :class:`jaxgen.data.loaders.UnpairedLoader`; image files:
:mod:`jaxgen.data.image_io`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from jaxgen.data import DEBIAN_DIR, pipeline
from jaxgen.data.image_io import convert_channels, list_images, pil_mode, read_images, resize_square

SOURCES = ("fashion_mnist", "tfds", "folders")  # + "synthetic" in datasets.UNPAIRED_SOURCES
DOMAINS = ("x", "y")
Domains = dict[str, list[np.ndarray]]


def _split_parts(split: str) -> tuple[str, str]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    return f"{split}A", f"{split}B"


def _contiguous_shard(n: int, num_shards: int, shard_id: int) -> slice:
    # As with tfds.even_splits, shard sizes differ by at most one example.
    return slice(shard_id * n // num_shards, (shard_id + 1) * n // num_shards)


def load_tfds_domains(
    *,
    split: str,
    num_shards: int,
    shard_ids: Sequence[int],
    load_size: int,
    channels: int = 3,
    name: str = "cycle_gan/monet2photo",
    data_dir: str | None = None,
    download: bool = False,
    swap_domains: bool = False,
) -> Domains:
    """This process's shards of TFDS ``cycle_gan/<config>``: X = B (photos), Y = A (Monet).

    Args:
      split: ``"train"`` (splits trainA/trainB) or ``"test"`` (testA/testB).
      num_shards: even shards (``tfds.even_splits``) each split is cut into.
      shard_ids: the shards this process reads; only these are read from disk.
      load_size: square side every image is stored at (bicubic when it differs).
      channels: 3 (RGB) or 1 (grayscale).
      name: TFDS dataset name with config.
      data_dir: TFDS data_dir; None: TFDS's default.
      download: allow TFDS to download and prepare (needs internet); otherwise an unprepared
        dataset is a :class:`fashion_mnist.DatasetNotFoundError` naming ``tfds build``.
      swap_domains: X = A, Y = B instead.

    A damaged file of the prepared dataset is a :class:`fashion_mnist.DatasetFileError` naming
    it (:func:`sources.named_file_errors`).
    """
    import tensorflow_datasets as tfds

    from jaxgen.data import sources

    builder = sources.get_tfds_builder(
        name, data_dir=data_dir, local_dir=DEBIAN_DIR, download=download
    )
    part_a, part_b = _split_parts(split)
    x_part, y_part = (part_a, part_b) if swap_domains else (part_b, part_a)
    out: Domains = {}
    for domain, part in zip(DOMAINS, (x_part, y_part), strict=True):
        subsplits = tfds.even_splits(part, n=num_shards)
        out[domain] = []
        for i in shard_ids:
            # One example at a time: the images need not share a size (TFDS's Image feature
            # has shape (None, None, 3)), so they are resized before stacking.
            with sources.named_file_errors(builder, name, part):
                ds = builder.as_dataset(split=subsplits[i]).map(lambda ex: ex["image"])
                images = [
                    resize_square(convert_channels(im, channels), load_size)
                    for im in tfds.as_numpy(ds)
                ]
            if not images:
                raise ValueError(f"shard {i} of {name} split {part} is empty.")
            out[domain].append(np.stack(images))
    return out


def load_folder_domains(
    *,
    root: str,
    split: str,
    num_shards: int,
    shard_ids: Sequence[int],
    load_size: int,
    channels: int = 3,
    swap_domains: bool = False,
) -> Domains:
    """This process's shards of ``root/{split}A`` (X) and ``root/{split}B`` (Y).

    Files are sorted by name and cut into `num_shards` contiguous shards (sizes within
    one of each other); only this process's files are decoded.

    Args:
      root: folder holding ``trainA/``, ``trainB/`` (and ``testA/``, ``testB/`` for eval).
      split: ``"train"`` or ``"test"``.
      num_shards: shards each folder is cut into.
      shard_ids: the shards this process reads.
      load_size: square side every image is stored at (bicubic when it differs).
      channels: 3 converts to RGB, 1 to grayscale.
      swap_domains: X = B/, Y = A/ instead (e.g. for the Berkeley monet2photo folders, whose
        A/ holds the paintings).
    """
    part_a, part_b = _split_parts(split)
    x_part, y_part = (part_b, part_a) if swap_domains else (part_a, part_b)
    out: Domains = {}
    for domain, part in zip(DOMAINS, (x_part, y_part), strict=True):
        folder = os.path.join(root, part)
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"data.root={root} has no {part}/ folder; CycleGAN's folders source needs "
                "trainA/ and trainB/ (and testA/, testB/ for evaluation) under data.root.")
        names = list_images(folder)
        if len(names) < num_shards:
            raise ValueError(
                f"{folder} holds {len(names)} images, fewer than the {num_shards} data shards."
            )
        paths = [os.path.join(folder, n) for n in names]
        out[domain] = [
            read_images(paths[_contiguous_shard(len(paths), num_shards, i)], size=load_size,
                         channels=channels)
            for i in shard_ids
        ]
    return out


def select_classes(
    images: np.ndarray, labels: np.ndarray, *, class_x: int, class_y: int, pad_to: int = 32,
    channels: int = 1,
) -> dict[str, np.ndarray]:
    """Two classes of a labelled uint8 ``[N, H, W, 1]`` array as the domains X and Y.

    Images are zero-padded (centred) to ``pad_to`` — Fashion-MNIST's background is 0 — and
    repeated to 3 channels when ``channels`` is 3.
    """
    if class_x == class_y:
        raise ValueError(f"class_x and class_y are both {class_x}; the domains would coincide.")
    pil_mode(channels)
    out = {}
    for domain, cls in zip(DOMAINS, (class_x, class_y), strict=True):
        chosen = pipeline.pad_images(images[labels == cls], pad_to)
        out[domain] = np.repeat(chosen, channels, axis=-1) if channels == 3 else chosen
    return out


def load_fashion_mnist_domains(
    *,
    split: str,
    num_shards: int,
    shard_ids: Sequence[int],
    class_x: int = 7,
    class_y: int = 9,
    pad_to: int = 32,
    channels: int = 1,
    data_dir: str | None = None,
    local_dir: str = DEBIAN_DIR,
    download: bool = False,
) -> Domains:
    """The offline demo: X = Fashion-MNIST class 7 (sneakers), Y = class 9 (ankle boots).

    Each process reads only its shards of the split (``sources.load_image_shards``, which
    prepares Fashion-MNIST from Debian's files) and keeps the two classes of each, so shard
    sizes vary a little with the class counts per shard.
    """
    from jaxgen.data import sources

    shards = sources.load_image_shards(
        source="tfds", name="fashion_mnist", split=split, num_shards=num_shards,
        shard_ids=shard_ids, data_dir=data_dir, local_dir=local_dir, download=download,
    )
    out: Domains = {d: [] for d in DOMAINS}
    for i, shard in zip(shard_ids, shards, strict=True):
        chosen = select_classes(shard["image"], shard["label"], class_x=class_x,
                                class_y=class_y, pad_to=pad_to, channels=channels)
        for domain in DOMAINS:
            if not len(chosen[domain]):
                raise ValueError(f"shard {i} of fashion_mnist {split} has no {domain} examples.")
            out[domain].append(chosen[domain])
    return out


def load_unpaired_shards(
    *,
    source: str,
    split: str,
    num_shards: int,
    shard_ids: Sequence[int],
    load_size: int,
    channels: int = 3,
    swap_domains: bool = False,
    name: str = "cycle_gan/monet2photo",
    data_dir: str | None = None,
    download: bool = False,
    root: str | None = None,
    class_x: int = 7,
    class_y: int = 9,
    local_dir: str = DEBIAN_DIR,
) -> Domains:
    """This process's shards of both domains from `source` (one ``config.data`` section).

    Args:
      source: ``"tfds"``, ``"folders"`` or ``"fashion_mnist"`` (see the module docstring for
        which stored domain becomes X).
      split: ``"train"`` or ``"test"``.
      num_shards: shards each domain is cut into (a multiple of the process count).
      shard_ids: the shards this process reads.
      load_size: stored square side. tfds/folders: images are resized to it; fashion_mnist:
        the padded side (≥ 28).
      channels: 3 (RGB) or 1 (grayscale).
      swap_domains: tfds/folders: exchange which of A/B is X.
      name: TFDS dataset with config (tfds).
      data_dir: TFDS data_dir; None: TFDS's default (tfds, fashion_mnist).
      download: allow TFDS's download (needs internet; tfds, fashion_mnist).
      root: the folder holding trainA/, trainB/, testA/, testB/ (folders).
      class_x: Fashion-MNIST class of domain X (fashion_mnist).
      class_y: Fashion-MNIST class of domain Y (fashion_mnist).
      local_dir: folder of Debian's Fashion-MNIST IDX files (fashion_mnist).

    Returns:
      ``{"x": [uint8 [N_s, S, S, C] per local shard], "y": [...]}``.
    """
    common = dict(split=split, num_shards=num_shards, shard_ids=shard_ids, channels=channels)
    if source == "tfds":
        return load_tfds_domains(**common, load_size=load_size, name=name, data_dir=data_dir,
                                 download=download, swap_domains=swap_domains)
    if source == "folders":
        if not root:
            raise ValueError("source='folders' needs root, the folder holding trainA/, trainB/.")
        return load_folder_domains(**common, root=root, load_size=load_size,
                                   swap_domains=swap_domains)
    if source == "fashion_mnist":
        return load_fashion_mnist_domains(**common, class_x=class_x, class_y=class_y,
                                          pad_to=load_size, data_dir=data_dir,
                                          local_dir=local_dir, download=download)
    raise ValueError(f"unknown unpaired data source {source!r}; choose one of {SOURCES}.")
