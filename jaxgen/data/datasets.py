"""The data a run trains and evaluates on, behind one interface for every family.

Two kinds, chosen by the family's ``data_kind``:

* :class:`ImageData` (``"images"``): one domain, ``"image"`` (with ``"label"``), from TFDS
  (Fashion-MNIST offline from Debian's files) or deterministic toy images; optionally
  zero-padded to ``image_size``.
* :class:`UnpairedData` (``"unpaired"``): two domains ``"x"`` and ``"y"`` for CycleGAN (TFDS
  ``cycle_gan/*``, image folders, or two Fashion-MNIST classes).

Each process loads only its shards of a split. Images are held as uint8 and mapped to the
family's input range (``"unit"``: [0, 1], ``"symmetric"``: [−1, 1]) when a batch is made.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np

from jaxgen.data import DEBIAN_DIR, IMAGE_SOURCES, image_io, pipeline, sharding, unpaired
from jaxgen.data.loaders import TrainLoader, UnpairedLoader, eval_batches
from jaxgen.validation import ConfigError, check_choice, check_number

# The unpaired sources read from storage, and toy images made here (UnpairedData._load).
UNPAIRED_SOURCES = (*unpaired.SOURCES, "synthetic")
Shards = list[pipeline.Batch]  # per local shard: {"image": uint8 [N_s, H, W, C], "label"?}


@dataclasses.dataclass(frozen=True)
class ImageDataConfig:
    source: str = "tfds"
    name: str = "fashion_mnist"
    data_dir: str | None = None  # TFDS data_dir; None: TFDS's default
    local_dir: str = DEBIAN_DIR  # Debian's Fashion-MNIST IDX files
    download: bool = False  # allow TFDS's standard download (needs internet)
    num_shards: int = 0  # 0: one shard per process
    synthetic_examples: int = 512  # per split, source="synthetic" only
    image_shape: tuple[int, int, int] = (28, 28, 1)  # as stored
    image_size: int = 0  # zero-pad to image_size² (0: as stored)

    def __post_init__(self):
        check_choice("data.source", self.source, IMAGE_SOURCES)
        check_number("data.num_shards", self.num_shards, low=0, integer=True)
        check_number("data.synthetic_examples", self.synthetic_examples, low=1, integer=True)
        if len(self.image_shape) != 3:
            raise ConfigError(f"data.image_shape={self.image_shape!r} must be (H, W, C).")
        for v in self.image_shape:
            check_number("data.image_shape", v, low=1, integer=True)
        if self.image_size:
            check_number("data.image_size", self.image_size, low=max(self.image_shape[:2]),
                         integer=True)


@dataclasses.dataclass(frozen=True)
class UnpairedDataConfig:
    source: str = "fashion_mnist"
    name: str = "cycle_gan/monet2photo"  # source="tfds"
    root: str = ""  # source="folders": trainA/ trainB/ testA/ testB/
    swap_domains: bool = False  # tfds: X = B (photos); folders: X = A/. True swaps them.
    class_x: int = 7  # source="fashion_mnist": sneakers
    class_y: int = 9  # ankle boots
    channels: int = 1
    load_size: int = 32  # stored side (then random crop_size crops)
    crop_size: int = 32
    flip: bool = True
    data_dir: str | None = None
    local_dir: str = DEBIAN_DIR
    download: bool = False
    num_shards: int = 0
    synthetic_examples: int = 64  # source="synthetic": per domain and split

    def __post_init__(self):
        check_choice("data.source", self.source, UNPAIRED_SOURCES)
        check_number("data.synthetic_examples", self.synthetic_examples, low=1, integer=True)
        check_choice("data.channels", self.channels, (1, 3))
        check_number("data.crop_size", self.crop_size, low=1, integer=True)
        check_number("data.load_size", self.load_size, low=self.crop_size, integer=True)
        check_number("data.num_shards", self.num_shards, low=0, integer=True)
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
    """What both kinds share: sharding, cached splits, eval batches."""

    domains: tuple[str, ...]

    def __init__(self, config, *, input_range: str, seed: int):
        self.config = config
        self.input_range = input_range
        self.seed = seed
        self.num_shards = config.num_shards or jax.process_count()
        self.shard_ids = pipeline.shards_of_process(self.num_shards, jax.process_index(),
                                                    jax.process_count())

    def per_shard(self, global_batch: int, num_local_devices: int, what: str) -> int:
        return sharding.split_batch(global_batch, num_shards=self.num_shards,
                                    local_shards=len(self.shard_ids),
                                    num_local_devices=num_local_devices, what=what)

    @functools.cache  # noqa: B019 (one Data per run)
    def split(self, split: str) -> dict[str, Shards]:
        """This process's shards of each domain of `split` (read once)."""
        return self._load(split)

    def _load(self, split: str) -> dict[str, Shards]:
        raise NotImplementedError

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 images as stored → model inputs."""
        return pipeline.to_range(images, self.input_range)

    def eval_batches(self, domain: str, *, global_batch: int, max_examples: int,
                     num_local_devices: int, what: str, split: str = "test"):
        """Every example of `domain` in `split` once (the first ``max_examples`` in total;
        0: all) in padded batches ``{"image", "mask", ...}``, and the number of batches."""
        shards = self.split(split)[domain]
        per_shard = self.per_shard(global_batch, num_local_devices, what)
        if max_examples > 0:
            cap = max(1, -(-max_examples // self.num_shards))
            shards = [{k: v[:cap] for k, v in s.items()} for s in shards]
        longest = sharding.global_min_max([len(s["image"]) for s in shards])[1]
        steps = -(-longest // per_shard)
        batches = eval_batches(
            shards, batch_per_shard=per_shard, num_steps=steps,
            preprocess=lambda b: {**b, "image": self.preprocess(b["image"])})
        return batches, steps

    def num_examples(self, split: str, domain: str = "image") -> int:
        """How many examples of `domain` in `split` this process reads (its shards)."""
        return sum(len(s["image"]) for s in self.split(split)[domain])

    def images(self, split: str, domain: str = "image", *, start: int = 0,
               stop: int | None = None) -> dict[str, np.ndarray]:
        """Examples ``start … stop − 1`` of this process's shards of `split` as stored (uint8
        ``"image"`` [N, H, W, C], with ``"label"`` where the data has labels), read in order."""
        shards = self.split(split)[domain]
        return {k: np.concatenate([s[k] for s in shards])[start:stop] for k in shards[0]}

    def examples(self, domain: str, num: int) -> np.ndarray:
        """The first `num` test images of `domain` in this process's first shard."""
        return self.preprocess(self.split("test")[domain][0]["image"][:num])


class ImageData(_Data):
    """Single-domain images (``"image"``), zero-padded to ``image_size`` when set."""

    domains = ("image",)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w, c = self.config.image_shape
        s = self.config.image_size
        return (s, s, c) if s else (h, w, c)

    def _load_labelled(self, split: str) -> list[pipeline.Batch]:
        from jaxgen.data import sources  # TFDS: imported where data is read

        c = self.config
        return sources.load_image_shards(
            source=c.source, name=c.name, split=split, num_shards=self.num_shards,
            shard_ids=self.shard_ids, data_dir=c.data_dir, local_dir=c.local_dir,
            download=c.download, synthetic_examples=c.synthetic_examples,
            image_shape=c.image_shape, seed=self.seed)

    @functools.cache  # noqa: B019
    def labelled(self, split: str) -> list[pipeline.Batch]:
        """This process's shards of `split` with labels (``{"image", "label"}`` each)."""
        return self._load_labelled(split)

    def _load(self, split):
        return {"image": self.labelled(split)}

    def preprocess(self, images):
        if self.config.image_size:
            images = pipeline.pad_images(images, self.config.image_size)
        return pipeline.to_range(images, self.input_range)

    def train_loader(self, global_batch: int, num_local_devices: int):
        shards = self.labelled("train")
        return TrainLoader(
            shards=shards, shard_ids=self.shard_ids,
            batch_per_shard=self.per_shard(global_batch, num_local_devices, "train.batch_size"),
            seed=self.seed, preprocess=lambda b: {**b, "image": self.preprocess(b["image"])},
            longest_shard=sharding.global_min_max([len(s["image"]) for s in shards])[1])


class UnpairedData(_Data):
    """Two unpaired domains ``"x"`` and ``"y"`` (CycleGAN), at ``crop_size`` square."""

    domains = ("x", "y")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.crop_size, self.config.crop_size, self.config.channels)

    def _load(self, split):
        c = self.config
        # Train at load_size (random crops); test at crop_size, as the reference evaluates.
        size = c.load_size if split == "train" else c.crop_size
        if c.source == "fashion_mnist":
            size = c.load_size  # padded, not resized
        if c.source == "synthetic":  # toy blobs, a different stream per domain
            tag = {"train": 0, "test": 1}[split]
            shape = (size, size, c.channels)
            n = c.synthetic_examples // self.num_shards
            return {d: [{"image": pipeline.synthetic_images(
                n, shape, seed=(self.seed, tag, j, i))["image"]} for i in self.shard_ids]
                for j, d in enumerate(self.domains)}
        domains = unpaired.load_unpaired_shards(
            source=c.source, split=split, num_shards=self.num_shards, shard_ids=self.shard_ids,
            load_size=size, channels=c.channels, swap_domains=c.swap_domains, name=c.name,
            data_dir=c.data_dir, download=c.download, root=c.root, class_x=c.class_x,
            class_y=c.class_y, local_dir=c.local_dir)
        return {d: [{"image": s} for s in shards] for d, shards in domains.items()}

    def preprocess(self, images):
        size = self.config.crop_size
        if images.shape[1:3] != (size, size):
            images = np.stack([image_io.resize_square(im, size) for im in images])
        return pipeline.to_range(images, self.input_range)

    def train_loader(self, global_batch: int, num_local_devices: int):
        c = self.config
        train = self.split("train")
        return UnpairedLoader(
            x=[s["image"] for s in train["x"]], y=[s["image"] for s in train["y"]],
            shard_ids=self.shard_ids,
            batch_per_shard=self.per_shard(global_batch, num_local_devices, "train.batch_size"),
            seed=self.seed, load_size=c.load_size, crop_size=c.crop_size, flip=c.flip,
            longest_shard=sharding.global_min_max(
                [len(s["image"]) for d in self.domains for s in train[d]])[1])


KINDS: dict[str, tuple[type, Callable]] = {
    "images": (ImageDataConfig, ImageData),
    "unpaired": (UnpairedDataConfig, UnpairedData),
}
