"""TEMPORARY (merge with the data-layer split)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxgen.data.unpaired import load_image_folder  # noqa: F401
from jaxgen.validation import ConfigError


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] → uint8 in [0, 255] (rounded, clipped)."""
    return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def output_names(names: Sequence[str], folder: str, *, overwrite: bool) -> list[str]:
    """One ``<stem>.png`` path in `folder` per input name, refusing what would lose data.

    Raises:
      ConfigError: `folder` exists and is not empty (unless `overwrite`), or two inputs would
        be written to one file name.
    """
    folder = os.path.abspath(folder)
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
        raise ConfigError(f"output folder {folder} is not empty; choose a new folder or allow "
                          "overwriting (translate.overwrite=True).")
    paths, seen = [], {}
    for name in names:
        path = os.path.join(folder, os.path.splitext(os.path.basename(name))[0] + ".png")
        if path in seen:
            raise ConfigError(f"inputs {seen[path]!r} and {name!r} would both be written to "
                              f"{path}; rename one of them.")
        seen[path] = name
        paths.append(path)
    os.makedirs(folder, exist_ok=True)
    return paths


def write_images(images: np.ndarray, paths: Sequence[str]) -> list[str]:
    """Write images ``[N, H, W, C]`` in [0, 1] (C = 1 or 3) as PNGs to `paths`."""
    if len(images) != len(paths):
        raise ValueError(f"{len(images)} images but {len(paths)} paths.")
    for image, path in zip(to_uint8(images), paths, strict=True):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
    return list(paths)
