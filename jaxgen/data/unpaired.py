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

:class:`UnpairedLoader` draws a training batch as a pure function of ``(seed, shard, step)``
like :class:`jaxgen.data.pipeline.TrainLoader`: each domain of each shard is an endless stream
of epoch permutations, so the smaller domain simply wraps around more often; an epoch of the
step schedule covers the larger domain once (the reference's dataset length max(|A|, |B|)).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from jaxgen.data import DEBIAN_DIR, pipeline
from jaxgen.data.pipeline import to_signed_unit, to_uint8

SOURCES = ("tfds", "folders", "fashion_mnist")
DOMAINS = ("x", "y")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
Domains = dict[str, list[np.ndarray]]

# Seed-sequence tags keep the permutation and augmentation streams of one shard apart even
# when an epoch number equals a step number.
_PERMUTATION, _AUGMENTATION = 0, 1


# ---------------------------------------------------------------------------------------------
# Image helpers (host side, uint8)
# ---------------------------------------------------------------------------------------------


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of one uint8 ``[H, W, C]`` image to ``[size, size, C]`` (PIL).

    Non-square images are squashed, as the reference's ``Resize([size, size])`` does.
    """
    if image.shape[:2] == (size, size):
        return image
    squeeze = image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC))
    return out[..., None] if squeeze else out


def _convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``[H, W, C]`` → ``[H, W, channels]`` (RGB or luminance, as PIL converts)."""
    if image.shape[-1] == channels:
        return image
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.convert(_pil_mode(channels)))
    return out[..., None] if channels == 1 else out


def _pil_mode(channels: int) -> str:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}.")
    return "L" if channels == 1 else "RGB"


def list_images(folder: str) -> list[str]:
    """Sorted names of the png/jpg/jpeg files in `folder`; an error naming it when none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder} does not exist.")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise FileNotFoundError(
            f"image folder {folder} holds no {'/'.join(IMAGE_EXTENSIONS)} files."
        )
    return names


def _read_images(paths: Sequence[str], *, size: int | None, channels: int) -> np.ndarray:
    mode = _pil_mode(channels)
    images = []
    for path in paths:
        with Image.open(path) as pil:
            image = np.asarray(pil.convert(mode))
        image = image[..., None] if channels == 1 else image
        images.append(image if size is None else resize_square(image, size))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"images differ in size ({sorted(shapes)[:3]}...); pass a size to resize them."
        )
    return np.stack(images)


def load_image_folder(
    path: str, *, size: int | None, channels: int = 3
) -> tuple[np.ndarray, list[str]]:
    """All images of a folder (sorted by name), e.g. for translating a folder.

    Args:
      path: folder of png/jpg/jpeg files (not recursive).
      size: square side to resize to (bicubic, only images of another size); None keeps the
        stored size, which must then be the same for every image.
      channels: 3 converts to RGB, 1 to grayscale (PIL's luminance).

    Returns:
      ``(images, filenames)``: uint8 ``[N, size, size, channels]`` and the file names.
    """
    names = list_images(path)
    return _read_images([os.path.join(path, n) for n in names], size=size,
                        channels=channels), names


def save_images(images: np.ndarray, folder: str, filenames: Sequence[str]) -> list[str]:
    """Write images in [−1, 1] as PNGs named after `filenames` (extension replaced by .png).

    Args:
      images: ``[N, H, W, C]`` with C = 1 or 3, values in [−1, 1].
      folder: output folder, created if missing.
      filenames: one name per image (e.g. from :func:`load_image_folder`).

    Returns:
      The written paths.
    """
    if len(images) != len(filenames):
        raise ValueError(f"{len(images)} images but {len(filenames)} file names.")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for image, name in zip(to_uint8(images), filenames, strict=True):
        path = os.path.join(folder, os.path.splitext(os.path.basename(name))[0] + ".png")
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


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
            ds = builder.as_dataset(split=subsplits[i]).map(lambda ex: ex["image"])
            images = [
                resize_square(_convert_channels(im, channels), load_size)
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
        names = list_images(folder)
        if len(names) < num_shards:
            raise ValueError(
                f"{folder} holds {len(names)} images, fewer than the {num_shards} data shards."
            )
        paths = [os.path.join(folder, n) for n in names]
        out[domain] = [
            _read_images(paths[_contiguous_shard(len(paths), num_shards, i)], size=load_size,
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
    _pil_mode(channels)
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


# ---------------------------------------------------------------------------------------------
# Preprocessing and batches
# ---------------------------------------------------------------------------------------------


def augment(
    images: np.ndarray, rng: np.random.Generator, *, load_size: int, crop_size: int,
    flip: bool,
) -> np.ndarray:
    """The reference's training transform: resize, random crop, random horizontal flip.

    Args:
      images: uint8 ``[B, H, W, C]``; resized (bicubic) only when not ``load_size`` square.
      rng: source of the crop offsets and flips (one draw per image).
      load_size: side before cropping (286 for 256 crops).
      crop_size: output side; equal to ``load_size`` means no crop.
      flip: flip each image left–right with probability ½.

    Returns:
      float32 ``[B, crop_size, crop_size, C]`` in [−1, 1].
    """
    if crop_size > load_size:
        raise ValueError(f"crop_size={crop_size} exceeds load_size={load_size}.")
    b = len(images)
    tops = rng.integers(0, load_size - crop_size + 1, size=b)
    lefts = rng.integers(0, load_size - crop_size + 1, size=b)
    flips = rng.random(b) < 0.5 if flip else np.zeros(b, bool)
    out = np.empty((b, crop_size, crop_size, images.shape[-1]), np.uint8)
    for i, image in enumerate(images):
        image = resize_square(image, load_size)
        crop = image[tops[i] : tops[i] + crop_size, lefts[i] : lefts[i] + crop_size]
        out[i] = crop[:, ::-1] if flips[i] else crop
    return to_signed_unit(out)


def make_eval_preprocess(size: int) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 images → float32 [−1, 1] at ``size`` square (bicubic only where it differs)."""

    def preprocess(images: np.ndarray) -> np.ndarray:
        if images.shape[1:3] != (size, size):
            images = np.stack([resize_square(im, size) for im in images])
        return to_signed_unit(images)

    return preprocess


@dataclasses.dataclass
class UnpairedLoader:
    """Independently shuffled batches of both domains for the shards this process reads.

    Domain d of local shard s (n examples) is an endless stream: stream position p holds
    example ``perm_{d,s,p // n}[p % n]``, each permutation drawn from
    ``(seed, shard id, d, epoch)``; step t takes positions ``t·b … t·b + b − 1``. So every
    example of a domain is seen once per pass over that domain, the smaller domain wrapping
    around more often, and a batch is a pure function of ``(seed, shard ids, step)``: a resumed
    run sees exactly the batches of an uninterrupted one. The global batch is the concatenation
    of the per-shard parts in shard order, as in :class:`pipeline.TrainLoader`.

    Attributes:
      x: uint8 ``[N_s, H, W, C]`` per local shard, domain X.
      y: the same for domain Y (its own sizes).
      shard_ids: the global id of each local shard.
      batch_per_shard: examples of each domain taken from each shard per step.
      seed: base seed of the shuffles and augmentations.
      load_size: side before cropping; stored images of another size are resized per batch.
      crop_size: side of the output images.
      flip: random horizontal flips.
      longest_shard: the longest shard of either domain over all processes, for
        :attr:`steps_per_epoch`; None uses the longest local one (exact on one process).
    """

    x: list[np.ndarray]
    y: list[np.ndarray]
    shard_ids: list[int]
    batch_per_shard: int
    seed: int
    load_size: int
    crop_size: int
    flip: bool = True
    longest_shard: int | None = None

    def __post_init__(self):
        for domain in DOMAINS:
            shards = getattr(self, domain)
            if len(shards) != len(self.shard_ids):
                raise ValueError(
                    f"{len(shards)} {domain} shards for {len(self.shard_ids)} shard ids."
                )
            if any(len(s) == 0 for s in shards):
                raise ValueError(f"an empty {domain} shard; every shard needs examples.")
        if self.crop_size > self.load_size:
            raise ValueError(f"crop_size={self.crop_size} exceeds load_size={self.load_size}.")
        self._perms: dict[tuple[int, int, int], np.ndarray] = {}

    @property
    def steps_per_epoch(self) -> int:
        """Steps per pass over the larger domain: ceil(longest shard / batch_per_shard).

        With even shards this is ceil(max(|X|, |Y|) / global batch), the reference's epoch.
        """
        longest = self.longest_shard or max(len(s) for d in DOMAINS for s in getattr(self, d))
        return math.ceil(longest / self.batch_per_shard)

    def _permutation(self, domain: int, shard_index: int, epoch: int) -> np.ndarray:
        shard_id = self.shard_ids[shard_index]
        key = (domain, shard_id, epoch)
        if key not in self._perms:
            if len(self._perms) > 8 * len(self.shard_ids):
                self._perms.clear()
            n = len((self.x, self.y)[domain][shard_index])
            rng = np.random.default_rng([self.seed, shard_id, domain, _PERMUTATION, epoch])
            self._perms[key] = rng.permutation(n)
        return self._perms[key]

    def _indices(self, domain: int, shard_index: int, step: int) -> np.ndarray:
        n = len((self.x, self.y)[domain][shard_index])
        positions = step * self.batch_per_shard + np.arange(self.batch_per_shard)
        epochs, offsets = np.divmod(positions, n)
        out = np.empty_like(positions)
        # A batch may straddle epochs (always when b > n); each part uses its own permutation.
        for epoch in np.unique(epochs):
            where = epochs == epoch
            out[where] = self._permutation(domain, shard_index, int(epoch))[offsets[where]]
        return out

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """``{"x", "y"}``: float32 ``[b·local shards, crop, crop, C]`` in [−1, 1] for `step`."""
        out = {}
        for d, name in enumerate(DOMAINS):
            parts = []
            for s, shard in enumerate(getattr(self, name)):
                rng = np.random.default_rng(
                    [self.seed, self.shard_ids[s], d, _AUGMENTATION, step]
                )
                parts.append(augment(shard[self._indices(d, s, step)], rng,
                                     load_size=self.load_size, crop_size=self.crop_size,
                                     flip=self.flip))
            out[name] = np.concatenate(parts)
        return out


def iterate_domain(
    shards: list[np.ndarray],
    *,
    batch_per_shard: int,
    preprocess: Callable[[np.ndarray], np.ndarray] = to_signed_unit,
    num_steps: int | None = None,
) -> Iterator[pipeline.Batch]:
    """Every image of one domain's local shards once, in order, in fixed-size batches.

    A thin wrapper of :func:`pipeline.eval_batches`: batches are ``{"image", "mask"}`` with
    zero padding (mask 0.0) at the end.

    Args:
      shards: uint8 ``[N_s, H, W, C]`` per local shard.
      batch_per_shard: images taken from each shard per batch.
      preprocess: uint8 images → model inputs (default: float32 in [−1, 1]; use
        :func:`make_eval_preprocess` to resize).
      num_steps: batches to yield; must be the same on every process (the global longest
        shard over `batch_per_shard`, rounded up). None: from the local shards.
    """
    if num_steps is None:
        num_steps = math.ceil(max(len(s) for s in shards) / batch_per_shard)

    def preprocess_batch(batch: pipeline.Batch) -> pipeline.Batch:
        return {**batch, "image": preprocess(batch["image"])}

    return pipeline.eval_batches(
        [{"image": s} for s in shards], batch_per_shard=batch_per_shard, num_steps=num_steps,
        preprocess=preprocess_batch,
    )
