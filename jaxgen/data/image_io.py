"""Image files: list, read (with resize and channel conversion) and write PNGs.

Everything in jaxgen that reads or writes an image file goes through this module: the folder
source of :mod:`jaxgen.data.unpaired`, translating a folder, sample PNGs, and the grids of
:class:`jaxgen.training.metrics.MetricWriter` (:func:`write_png`). Images are uint8
``[H, W, C]`` with C = 1 (grayscale) or 3 (RGB), host side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxgen.data.pipeline import to_uint8

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def pil_mode(channels: int) -> str:
    """PIL's mode for `channels`: ``"L"`` for 1, ``"RGB"`` for 3; an error otherwise."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}.")
    return "L" if channels == 1 else "RGB"


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


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``[H, W, C]`` → ``[H, W, channels]`` (RGB or luminance, as PIL converts)."""
    if image.shape[-1] == channels:
        return image
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.convert(pil_mode(channels)))
    return out[..., None] if channels == 1 else out


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


def read_images(paths: Sequence[str], *, size: int | None, channels: int) -> np.ndarray:
    """Decode image files into one uint8 ``[N, H, W, channels]`` array.

    Args:
      paths: image files.
      size: square side to resize to (bicubic, only images of another size); None keeps the
        stored size, which must then be the same for every image.
      channels: 3 converts to RGB, 1 to grayscale (PIL's luminance).
    """
    mode = pil_mode(channels)
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
    return read_images([os.path.join(path, n) for n in names], size=size,
                       channels=channels), names


def write_png(path: str, image: np.ndarray) -> str:
    """Write one uint8 ``[H, W, C]`` image (C = 1 or 3) as a PNG file; return `path`."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"write_png needs a uint8 [H, W, 1 or 3] image, got {image.dtype} {image.shape}."
        )
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, format="PNG")
    return path


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
    return [
        write_png(os.path.join(folder, os.path.splitext(os.path.basename(name))[0] + ".png"),
                  image)
        for image, name in zip(to_uint8(images), filenames, strict=True)
    ]
