"""The data a run trains and evaluates on, behind one interface for every family.

Two kinds, chosen by the family's ``data_kind`` (:data:`KINDS`; :func:`register_kind` adds
one):

* :class:`ImageData` (``"images"``): one domain, ``"image"`` (with ``"label"`` when the data has
  classes), from a TFDS dataset by name, a folder of images, or deterministic toy images.
* :class:`UnpairedData` (``"unpaired"``): two domains ``"x"`` and ``"y"`` for CycleGAN (TFDS
  ``cycle_gan/*``, ``trainA/ trainB/`` folders, two Fashion-MNIST classes, or toy images).

Both read each split as record sources cut into shards (:mod:`jaxgen.data.records`); each
process opens only its shards and reads a record when a batch needs it
(:class:`jaxgen.data.loaders.TrainBatches`). Image shape, channels and class names come from
the data and one preprocessing setting (``image_size``, ``resize``, ``channels``), and are
recorded with the run (:meth:`ImageData.describe`). Images are read as uint8 and mapped to the
family's input range (``"unit"``: [0, 1], ``"symmetric"``: [−1, 1]) when a batch is made.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable

import jax
import numpy as np

from jaxgen.data import DEBIAN_DIR, IMAGE_SOURCES, pipeline, sharding
from jaxgen.data.loaders import Reading, TrainBatches, augment, eval_batches, read_batch
from jaxgen.data.records import (
    RESIZE_MODES,
    ArraySource,
    FolderSource,
    RecordRange,
    SourceInfo,
    contiguous_range,
    first_image,
    scan_folder,
    split_listing,
)
from jaxgen.data.unpaired import DOMAINS
from jaxgen.data.unpaired import SOURCES as UNPAIRED_STORED
from jaxgen.validation import ConfigError, check_choice, check_number

# The unpaired sources read from storage, and toy images made here.
UNPAIRED_SOURCES = (*UNPAIRED_STORED, "synthetic")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ImageDataConfig:
    source: str = "tfds"  # "tfds", "folder" or "synthetic"
    name: str = "fashion_mnist"  # source="tfds"
    path: str = ""  # source="folder": DIR (with train/ and test/, or split by test_fraction)
    data_dir: str | None = None  # TFDS data_dir; None: TFDS's default
    local_dir: str = DEBIAN_DIR  # Debian's Fashion-MNIST IDX files
    download: bool = False  # allow TFDS's standard download (needs internet)
    image_key: str = ""  # TFDS image feature ("": the first Image feature)
    label_key: str = ""  # TFDS label feature ("": "label" or the first ClassLabel; "none")
    num_shards: int = 0  # 0: one shard per process
    image_size: int = 0  # square side of the model's images (0: as stored)
    resize: str = "crop"  # "crop": shorter side to image_size + centre crop; "pad": zero-pad
    channels: int = 0  # 1 (grey) or 3 (RGB); 0: as stored
    test_fraction: float = 0.1  # source="folder" without train/ and test/
    max_bad_fraction: float = 0.01  # stop when more of the records read are unreadable
    workers: int = 0  # reader processes (grain mp_prefetch); 0: threads of this process
    threads: int = 2  # reader threads (per worker process)
    synthetic_examples: int = 512  # per split, source="synthetic" only

    def __post_init__(self):
        check_choice("data.source", self.source, IMAGE_SOURCES)
        check_choice("data.resize", self.resize, RESIZE_MODES)
        check_choice("data.channels", self.channels, (0, 1, 3))
        check_number("data.num_shards", self.num_shards, low=0, integer=True)
        check_number("data.image_size", self.image_size, low=0, integer=True)
        check_number("data.synthetic_examples", self.synthetic_examples, low=1, integer=True)
        check_number("data.test_fraction", self.test_fraction, low=0.0, high=1.0,
                     low_open=True, high_open=True)
        check_number("data.max_bad_fraction", self.max_bad_fraction, low=0.0, high=1.0)
        check_number("data.workers", self.workers, low=0, integer=True)
        check_number("data.threads", self.threads, low=1, integer=True)
        if self.source == "folder" and not self.path:
            raise ConfigError("data.source='folder' needs data.path, the folder of images "
                              "(--config.data.path=DIR).")


@dataclasses.dataclass(frozen=True)
class UnpairedDataConfig:
    source: str = "fashion_mnist"
    name: str = "cycle_gan/monet2photo"  # source="tfds"
    root: str = ""  # source="folders": trainA/ trainB/ testA/ testB/
    swap_domains: bool = False  # tfds: X = B (photos); folders: X = A/. True swaps them.
    class_x: int = 7  # source="fashion_mnist": sneakers
    class_y: int = 9  # ankle boots
    channels: int = 1
    load_size: int = 32  # side before the random crop_size crops
    crop_size: int = 32
    flip: bool = True
    data_dir: str | None = None
    local_dir: str = DEBIAN_DIR
    download: bool = False
    num_shards: int = 0
    max_bad_fraction: float = 0.01
    workers: int = 0
    threads: int = 2
    synthetic_examples: int = 64  # source="synthetic": per domain and split

    def __post_init__(self):
        check_choice("data.source", self.source, UNPAIRED_SOURCES)
        check_number("data.synthetic_examples", self.synthetic_examples, low=1, integer=True)
        check_choice("data.channels", self.channels, (1, 3))
        check_number("data.crop_size", self.crop_size, low=1, integer=True)
        check_number("data.load_size", self.load_size, low=self.crop_size, integer=True)
        check_number("data.num_shards", self.num_shards, low=0, integer=True)
        check_number("data.max_bad_fraction", self.max_bad_fraction, low=0.0, high=1.0)
        check_number("data.workers", self.workers, low=0, integer=True)
        check_number("data.threads", self.threads, low=1, integer=True)
        if self.source == "fashion_mnist":
            for name in ("class_x", "class_y"):
                check_number(f"data.{name}", getattr(self, name), low=0, high=9, integer=True)
            if self.class_x == self.class_y:
                raise ConfigError(f"data.class_x and data.class_y are both {self.class_x}; the "
                                  "domains would coincide.")
            check_number("data.load_size", self.load_size, low=28, integer=True)
        if self.source == "folders" and not self.root:
            raise ConfigError("data.source='folders' needs data.root, the folder holding "
                              "trainA/, trainB/, testA/, testB/.")


class _Data:
    """What both kinds share: shards, sources per split, eval batches, reading examples."""

    domains: tuple[str, ...]

    def __init__(self, config, *, input_range: str, seed: int):
        self.config = config
        self.input_range = input_range
        self.seed = seed
        self.num_shards = config.num_shards or jax.process_count()
        self.shard_ids = pipeline.shards_of_process(self.num_shards, jax.process_index(),
                                                    jax.process_count())

    # --- what a kind defines ------------------------------------------------------------

    def _open(self, split: str) -> dict[str, list]:
        """``{domain: [record source per local shard]}`` of `split`."""
        raise NotImplementedError

    def reading(self, split: str, domain: str) -> Reading:
        """How records of `domain` in `split` become examples at the model's shape."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------

    @functools.cache  # noqa: B019 (one Data per run; sources hold file lists, not pixels)
    def sources(self, split: str) -> dict[str, list]:
        """This process's shards of each domain of `split`, as record sources (opened once)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        opened = self._open(split)
        for domain, shards in opened.items():
            for i, s in zip(self.shard_ids, shards, strict=True):
                if len(s) == 0:
                    raise ConfigError(f"shard {i} of the {split} split ({domain}) is empty: "
                                     f"fewer examples than the {self.num_shards} data shards.")
        return opened

    def per_shard(self, global_batch: int, num_local_devices: int, what: str) -> int:
        return sharding.split_batch(global_batch, num_shards=self.num_shards,
                                    local_shards=len(self.shard_ids),
                                    num_local_devices=num_local_devices, what=what)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 images at the data's shape → model inputs."""
        return pipeline.to_range(images, self.input_range)

    def num_examples(self, split: str, domain: str = "image") -> int:
        """How many examples of `domain` in `split` this process reads (its shards)."""
        return sum(len(s) for s in self.sources(split)[domain])

    def images(self, split: str, domain: str = "image", *, start: int = 0,
               stop: int | None = None) -> dict[str, np.ndarray]:
        """Examples ``start … stop − 1`` (Python slice rules) of this process's shards of
        `split`, in order, as uint8 ``"image"`` [N, H, W, C] at the data's shape, with
        ``"label"`` where the data has labels. Unreadable records are replaced by the next
        readable one."""
        shards = self.sources(split)[domain]
        wanted = range(self.num_examples(split, domain))[start:stop]
        reading = self.reading(split, domain)
        parts, offset = [], 0
        for shard in shards:
            local = [i - offset for i in wanted if offset <= i < offset + len(shard)]
            if local:
                parts.append(read_batch(shard, local, reading)[0])
            offset += len(shard)
        if not parts:
            raise ValueError(f"no {split} examples in [{start}, {stop}).")
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def eval_batches(self, domain: str, *, global_batch: int, max_examples: int,
                     num_local_devices: int, what: str, split: str = "test"):
        """Every example of `domain` in `split` once (the first ``max_examples`` in total;
        0: all) in padded batches ``{"image", "mask", ...}``, and the number of batches."""
        shards = self.sources(split)[domain]
        per_shard = self.per_shard(global_batch, num_local_devices, what)
        cap = max(1, -(-max_examples // self.num_shards)) if max_examples > 0 else 0
        lengths = [min(len(s), cap) if cap else len(s) for s in shards]
        steps = -(-sharding.global_min_max(lengths)[1] // per_shard)
        batches = eval_batches(
            shards, batch_per_shard=per_shard, num_steps=steps,
            reading=self.reading(split, domain), max_examples_per_shard=cap,
            max_bad_fraction=self.config.max_bad_fraction, threads=self.config.threads,
            preprocess=lambda b: {**b, "image": self.preprocess(b["image"])})
        return batches, steps

    def examples(self, domain: str, num: int) -> np.ndarray:
        """The first `num` test images of `domain` (this process's shards), as model inputs."""
        n = min(num, self.num_examples("test", domain))
        return self.preprocess(self.images("test", domain, stop=n)["image"])

    def _train_batches(self, global_batch: int, num_local_devices: int, *,
                       augment_fn=None) -> TrainBatches:
        train = self.sources("train")
        c = self.config
        return TrainBatches(
            domains=train, shard_ids=self.shard_ids,
            batch_per_shard=self.per_shard(global_batch, num_local_devices,
                                           "train.batch_size"),
            seed=self.seed, reading=self.reading("train", self.domains[0]),
            input_range=self.input_range, augment=augment_fn,
            longest_shard=sharding.global_min_max(
                [len(s) for shards in train.values() for s in shards])[1],
            workers=c.workers, threads=c.threads, max_bad_fraction=c.max_bad_fraction)


class ImageData(_Data):
    """Single-domain images (``"image"``, with ``"label"`` when the data has classes)."""

    domains = ("image",)

    def _open(self, split):
        c = self.config
        if c.source == "synthetic":
            n = c.synthetic_examples // self.num_shards
            tag = SPLITS.index(split)
            shape = self._synthetic_shape()
            return {"image": [ArraySource(**_renamed(pipeline.synthetic_images(
                n, shape, seed=(self.seed, tag, i))), name=f"synthetic {split} shard {i}")
                for i in self.shard_ids]}
        if c.source == "folder":
            listing = self._folder_listings()[split]
            whole = FolderSource(listing)
            return {"image": [RecordRange(whole, *contiguous_range(len(whole), self.num_shards,
                                                                   i)) for i in self.shard_ids]}
        from jaxgen.data import sources  # TFDS: imported where data is read

        shards, info = sources.tfds_shards(
            name=c.name, split=split, num_shards=self.num_shards, shard_ids=self.shard_ids,
            data_dir=c.data_dir, local_dir=c.local_dir, download=c.download,
            image_key=c.image_key, label_key=c.label_key)
        self._tfds_info = info
        return {"image": shards}

    def _synthetic_shape(self) -> tuple[int, int, int]:
        size = self.config.image_size or 28
        return (size, size, self.config.channels or 1)

    @functools.cache  # noqa: B019
    def _folder_listings(self):
        path = self.config.path
        train, test = (os.path.join(path, s) for s in SPLITS)
        if os.path.isdir(train) and os.path.isdir(test):
            listed = scan_folder(train)
            return {"train": listed,
                    "test": scan_folder(test, class_names=listed.class_names or None)}
        if os.path.isdir(train):  # DIR/train alone: its files, a test split held out
            path = train
        return split_listing(scan_folder(path), self.config.test_fraction)

    @functools.cached_property
    def info(self) -> SourceInfo:
        """The stored image shape and the class names, found from the data."""
        c = self.config
        if c.source == "synthetic":
            return SourceInfo(self._synthetic_shape(), tuple(str(i) for i in range(10)))
        if c.source == "folder":
            first = self.sources("train")["image"][0]
            return SourceInfo(first_image(first).shape,
                              self._folder_listings()["train"].class_names)
        self.sources("train")
        return self._tfds_info

    @functools.cached_property
    def image_shape(self) -> tuple[int, int, int]:
        """``(S, S, C)`` of the model's images: ``data.image_size`` (or the stored size) and
        ``data.channels`` (or the stored channels)."""
        h, w, stored_c = self.info.image_shape
        channels = self.config.channels or (1 if stored_c == 1 else 3)
        size = self.config.image_size
        if not size:
            if h is None or w is None or h != w:
                what = "vary in size" if h is None else f"are {h}×{w}"
                raise ConfigError(f"the images of {self.describe_source()} {what}; set "
                                  "--config.data.image_size=S to train on S×S images (resized "
                                  "and centre-cropped, or padded with data.resize=pad).")
            size = h
        return (size, size, channels)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def num_classes(self) -> int:
        """The number of classes (0: the data has no labels)."""
        return len(self.info.class_names)

    def describe_source(self) -> str:
        c = self.config
        return {"tfds": f"TFDS {c.name}", "folder": f"folder {c.path}",
                "synthetic": "synthetic data"}[c.source]

    def describe(self) -> dict:
        """What the run trained on, for its record: the source, the image shape, the classes
        and the number of examples per split (this process's shards)."""
        return {"source": self.describe_source(), "image_shape": list(self.image_shape),
                "class_names": list(self.class_names),
                "num_examples": {s: self.num_examples(s) for s in SPLITS}}

    def reading(self, split, domain="image"):
        size, _, channels = self.image_shape
        return Reading(size=size, channels=channels, resize=self.config.resize)

    def train_loader(self, global_batch: int, num_local_devices: int) -> TrainBatches:
        return self._train_batches(global_batch, num_local_devices)


def _renamed(batch: dict) -> dict:
    return {"images": batch["image"], "labels": batch.get("label")}


class UnpairedData(_Data):
    """Two unpaired domains ``"x"`` and ``"y"`` (CycleGAN), at ``crop_size`` square.

    Training reads each image at ``load_size`` square (the reference's deterministic resize;
    Fashion-MNIST classes are zero-padded instead), then takes random ``crop_size`` crops and
    flips (:func:`jaxgen.data.loaders.augment`); the test split is read at ``crop_size``, as
    the reference evaluates.
    """

    domains = DOMAINS
    num_classes = 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.crop_size, self.config.crop_size, self.config.channels)

    def describe(self) -> dict:
        c = self.config
        return {"source": c.source, "image_shape": list(self.image_shape),
                "num_examples": {s: {d: self.num_examples(s, d) for d in DOMAINS}
                                 for s in SPLITS}}

    def reading(self, split, domain="x"):
        c = self.config
        size = c.load_size if split == "train" else c.crop_size
        resize = "pad" if c.source == "fashion_mnist" else "squash"
        return Reading(size=size, channels=c.channels, resize=resize)

    def _open(self, split):
        c = self.config
        if c.source == "synthetic":  # toy blobs, a different stream per domain
            tag = SPLITS.index(split)
            size = c.load_size if split == "train" else c.crop_size
            n = c.synthetic_examples // self.num_shards
            return {d: [ArraySource(pipeline.synthetic_images(
                n, (size, size, c.channels), seed=(self.seed, tag, j, i))["image"])
                for i in self.shard_ids] for j, d in enumerate(DOMAINS)}
        if c.source == "fashion_mnist":
            return self._fashion_mnist_classes(split)
        part_a, part_b = f"{split}A", f"{split}B"
        if c.source == "tfds":  # X = B (photos), Y = A (Monet) unless swapped
            parts = (part_a, part_b) if c.swap_domains else (part_b, part_a)
        else:  # folders: X = A/, Y = B/ unless swapped
            parts = (part_b, part_a) if c.swap_domains else (part_a, part_b)
        out = {}
        for domain, part in zip(DOMAINS, parts, strict=True):
            if c.source == "tfds":
                from jaxgen.data import sources

                out[domain], _ = sources.tfds_shards(
                    name=c.name, split=part, num_shards=self.num_shards,
                    shard_ids=self.shard_ids, data_dir=c.data_dir, local_dir=c.local_dir,
                    download=c.download, label_key="none")
                continue
            folder = os.path.join(c.root, part)
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"data.root={c.root} has no {part}/ folder; CycleGAN's folders source "
                    "needs trainA/ and trainB/ (and testA/, testB/ for evaluation) under "
                    "data.root.")
            whole = FolderSource(scan_folder(folder, setting="data.root"))
            if len(whole) < self.num_shards:
                raise ConfigError(f"{folder} holds {len(whole)} images, fewer than the "
                                 f"{self.num_shards} data shards.")
            out[domain] = [RecordRange(whole, *contiguous_range(len(whole), self.num_shards, i))
                           for i in self.shard_ids]
        return out

    def _fashion_mnist_classes(self, split):
        """Two Fashion-MNIST classes of this process's shards, held in memory (6k images
        each): X = ``class_x``, Y = ``class_y``."""
        from jaxgen.data import sources

        c = self.config
        shards, _ = sources.tfds_shards(
            name="fashion_mnist", split=split, num_shards=self.num_shards,
            shard_ids=self.shard_ids, data_dir=c.data_dir, local_dir=c.local_dir,
            download=c.download)
        out = {d: [] for d in DOMAINS}
        for i, shard in zip(self.shard_ids, shards, strict=True):
            every = read_batch(shard, range(len(shard)), Reading(0, 1))[0]
            for domain, cls in zip(DOMAINS, (c.class_x, c.class_y), strict=True):
                chosen = every["image"][every["label"] == cls]
                if not len(chosen):
                    raise ConfigError(f"shard {i} of fashion_mnist {split} has no {domain} "
                                     f"examples (class {cls}).")
                out[domain].append(ArraySource(chosen, name=f"fashion_mnist class {cls}"))
        return out

    def train_loader(self, global_batch: int, num_local_devices: int) -> TrainBatches:
        c = self.config
        return self._train_batches(global_batch, num_local_devices, augment_fn=functools.partial(
            augment, load_size=c.load_size, crop_size=c.crop_size, flip=c.flip))


KINDS: dict[str, tuple[type, Callable]] = {
    "images": (ImageDataConfig, ImageData),
    "unpaired": (UnpairedDataConfig, UnpairedData),
}


def register_kind(name: str, config_cls: type, data_cls: type) -> None:
    """Add a data kind (a family's ``data_kind``): its frozen config dataclass (the ``data``
    section's settings) and its class (``data_cls(config, input_range=, seed=)``, with
    ``image_shape``, ``train_loader``, ``eval_batches``, ``examples`` like :class:`ImageData`).
    """
    if name in KINDS:
        raise ValueError(f"data kind {name!r} is already registered.")
    KINDS[name] = (config_cls, data_cls)
