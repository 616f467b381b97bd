"""Generated datasets on disk: image folders and TFDS ArrayRecord sets of toy images.

These machines reach no dataset host, so the folder and ArrayRecord code paths (Pillow,
TFDS's ``as_data_source``, grain) are tested and benchmarked on data made here; a researcher
can use them for a smoke run of a config before pointing it at real data::

    python -m jaxgen.data.generate folder /tmp/blobs64 --num_images 2000 --size 64 --classes 4
    python -m jaxgen.data.generate array_record /tmp/tfds --name blobs64 --num_images 2000

Images are coloured Gaussian blobs on a dark background (a different random colour, place and
width per image), a deterministic function of (seed, index).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

FORMATS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp"}


def blob_image(index: int, *, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """One toy image, uint8 ``[size, size, channels]``: a blob of a random colour."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = rng.uniform(0.25, 0.75, 2)
    width = rng.uniform(0.08, 0.2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    colour = rng.uniform(0.3, 1.0, channels)
    return np.round(255 * blob[..., None] * colour).astype(np.uint8)


def write_image_folder(root: str, *, num_images: int, size: int = 64, channels: int = 3,
                       classes: Sequence[str] = (), fmt: str = "jpeg", seed: int = 0,
                       quality: int = 90) -> list[str]:
    """Write `num_images` toy images under `root` (in class subfolders, round robin, when
    `classes` is given); returns their paths."""
    ext = FORMATS[fmt]
    paths = []
    for i in range(num_images):
        folder = os.path.join(root, classes[i % len(classes)]) if classes else root
        if i < max(1, len(classes)):
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"img_{i:07d}{ext}")
        image = blob_image(i, size=size, channels=channels, seed=seed)
        pil = Image.fromarray(image[..., 0] if channels == 1 else image)
        pil.save(path, quality=quality) if fmt == "jpeg" else pil.save(path)
        paths.append(path)
    return paths


def write_array_record(data_dir: str, *, name: str = "blobs", num_train: int,
                       num_test: int, size: int = 64, channels: int = 3,
                       num_classes: int = 4, seed: int = 0) -> str:
    """Prepare a TFDS dataset `name` of toy images (with ``label``) in `data_dir` as
    ArrayRecord, the format ``--config.data.source=tfds --config.data.name=NAME
    --config.data.data_dir=DATA_DIR`` reads by random access. Returns its folder."""
    import tensorflow_datasets as tfds

    class Generated(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, channels)),
                "label": tfds.features.ClassLabel(num_classes=num_classes)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, num_train),
                    "test": self._generate_examples(num_train, num_test)}

        def _generate_examples(self, start, n):
            for i in range(start, start + n):
                yield i, {"image": blob_image(i, size=size, channels=channels, seed=seed),
                          "label": i % num_classes}

    Generated.name = name
    builder = Generated(data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
    return builder.data_dir


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=("folder", "array_record"))
    p.add_argument("path", help="the folder (folder) or TFDS data_dir (array_record)")
    p.add_argument("--num_images", type=int, default=2000)
    p.add_argument("--num_test", type=int, default=0, help="array_record: test images")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", type=int, default=3, choices=(1, 3))
    p.add_argument("--classes", type=int, default=0, help="class subfolders (folder)")
    p.add_argument("--format", default="jpeg", choices=tuple(FORMATS))
    p.add_argument("--name", default="blobs")
    a = p.parse_args(argv)
    if a.kind == "folder":
        classes = [f"class_{k}" for k in range(a.classes)]
        write_image_folder(a.path, num_images=a.num_images, size=a.size, channels=a.channels,
                           classes=classes, fmt=a.format)
        print(f"wrote {a.num_images} {a.size}×{a.size} images to {a.path}")
    else:
        where = write_array_record(a.path, name=a.name, num_train=a.num_images,
                                   num_test=a.num_test or max(1, a.num_images // 10),
                                   size=a.size, channels=a.channels,
                                   num_classes=max(a.classes, 2))
        print(f"prepared {a.name} in {where}")


if __name__ == "__main__":
    main()
