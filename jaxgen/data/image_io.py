"""Image files: list, read (with resize and channel conversion) and write PNGs.

Everything in jaxgen that reads or writes an image file goes through this module: the folder
source of :mod:`jaxgen.data.unpaired`, translating a folder, sample PNGs, and the grids of
:class:`jaxgen.training.writer.MetricWriter` (:func:`write_png`). Images are uint8
``[H, W, C]`` with C = 1 (grayscale) or 3 (RGB), host side.

Reading (:func:`read_image`) gives correct 8-bit values for every mode Pillow opens a PNG or
JPEG in, or refuses the file with an :class:`ImageFileError` naming it and the fix:

- 8-bit L/RGB as stored; 1-, 2- and 4-bit grayscale expanded to 0…255 (Pillow's own scaling);
- 16-bit grayscale (Pillow mode ``"I;16"``, or ``"I"`` in older Pillow): v → round(v / 257),
  so 65535 → 255 and 257 → 1 (Pillow's ``convert("L")`` would clip every value above 255);
  16-bit colour PNGs: Pillow itself keeps the high byte (libpng's strip_16), within one level
  of round(v / 257);
- palette (``"P"``, with or without transparency), ``"PA"``, ``"LA"``, ``"RGBA"``, ``"CMYK"``,
  ``"YCbCr"``: converted by Pillow; alpha is dropped (the colour under it is kept), as the
  reference's ``Image.open(path).convert("RGB")`` does;
- 32-bit integer values outside 0…65535 and floating-point (``"F"``) images are refused;
- files Pillow cannot identify (e.g. a text file named ``.png``), truncated or corrupt files,
  and images larger than :data:`MAX_IMAGE_PIXELS` (a decompression-bomb guard, checked from
  the header before decoding) are refused.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

# 8192 × 8192. Images are resized to a few hundred pixels per side for training; a larger one
# is almost surely a mistake or a decompression bomb (a few KB of PNG that decode to GBs).
MAX_IMAGE_PIXELS = 8192 * 8192
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageFileError(ValueError):
    """An image file that cannot be read correctly; the message names the file and the fix."""


# Every extension an image folder is read with (lower-case; Pillow decodes them all).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


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


_ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """A decoded image ``[H, W, C]`` → uint8 ``[H, W, channels]`` (RGB or luminance).

    C = 1, 2 (gray + alpha), 3 or 4 (RGBA), alpha dropped as in :func:`read_image`; uint8, or
    uint16 scaled by round(v / 257). Anything else is a ValueError naming the shape and dtype.
    """
    if image.ndim != 3 or image.shape[-1] not in _ARRAY_MODES or image.dtype not in (
        np.uint8, np.uint16
    ):
        raise ValueError(
            f"expected a uint8 or uint16 image [H, W, 1-4], got {image.dtype} {image.shape}; "
            "convert the dataset's images to 8-bit grayscale or RGB."
        )
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.shape[-1] == channels:
        return image
    c = image.shape[-1]
    pil = Image.fromarray(image[..., 0] if c == 1 else image)  # L, LA, RGB or RGBA
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


def _open_checked(path: str) -> Image.Image:
    """Image.open with the size checked from the header, before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 M pixels; the limit below is lower and raises instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageFileError(_too_large(path, str(e))) from None
    except (OSError, SyntaxError, ValueError) as e:  # incl. PIL.UnidentifiedImageError
        if isinstance(e, FileNotFoundError):
            raise
        raise ImageFileError(
            f"cannot read image {path}: Pillow cannot identify it as an image ({e}); it is not "
            "a PNG/JPEG file or its header is damaged. Replace it with a valid PNG or JPEG "
            "image, or remove it from the folder."
        ) from None
    width, height = pil.size
    if width * height > MAX_IMAGE_PIXELS:
        pil.close()
        raise ImageFileError(_too_large(path, f"{width}×{height} = {width * height:,} pixels"))
    return pil


def _too_large(path: str, size: str) -> str:
    return (
        f"image {path} is too large to decode safely ({size}; the limit is "
        f"{MAX_IMAGE_PIXELS:,} pixels, a decompression-bomb guard). Downscale it, or if it is "
        "trusted raise jaxgen.data.image_io.MAX_IMAGE_PIXELS."
    )


GREY_MODES = ("1", "L", "LA", "P;L", *_SIXTEEN_BIT_MODES)


def _decode(pil: Image.Image, path: str, channels: int | None) -> np.ndarray:
    """Pixels of an opened image as uint8 ``[H, W, channels]`` (see the module docstring);
    `channels` None keeps grey images grey (1) and makes the others RGB (3)."""
    if channels is None:
        channels = 1 if pil.mode in GREY_MODES else 3
    mode = pil_mode(channels)
    if pil.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(pil)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageFileError(
                f"image {path} holds 32-bit integer values in [{values.min()}, {values.max()}], "
                "not an 8- or 16-bit image; convert it to an 8-bit PNG or JPEG."
            )
        # round(v / 257) in integers: v / 257 is never exactly k + ½ (257 is odd).
        gray = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
        pil = Image.fromarray(gray)  # mode "L"
    elif pil.mode == "F" or pil.mode.startswith(("I;", "F;")):
        raise ImageFileError(
            f"image {path} has Pillow mode {pil.mode!r} (floating-point or unusual integer "
            "pixels), which has no defined 8-bit scaling; convert it to an 8-bit PNG or JPEG."
        )
    image = np.asarray(pil.convert(mode))
    return image[..., None] if channels == 1 else image


def read_image(path: str, *, channels: int | None = 3) -> np.ndarray:
    """Decode one PNG/JPEG file as uint8 ``[H, W, channels]`` (any mode and bit depth).

    Args:
      path: the image file.
      channels: 3 converts to RGB, 1 to grayscale (PIL's luminance); None keeps grey
        images grey and makes the others RGB.

    Raises:
      ImageFileError: the file is not an image, truncated or corrupt, larger than
        :data:`MAX_IMAGE_PIXELS`, or of a mode with no 8-bit meaning; the message names the
        file and what to do.
    """
    pil = _open_checked(path)
    try:
        return _decode(pil, path, channels)
    except ImageFileError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as e:
        raise ImageFileError(
            f"cannot decode image {path}: the file is truncated or corrupt ({e}). Re-export or "
            "re-download it, or remove it from the folder."
        ) from None
    finally:
        pil.close()


def read_images(paths: Sequence[str], *, size: int | None, channels: int) -> np.ndarray:
    """Decode image files (:func:`read_image`) into one uint8 ``[N, H, W, channels]`` array.

    Args:
      paths: image files.
      size: square side to resize to (bicubic, only images of another size); None keeps the
        stored size, which must then be the same for every image.
      channels: 3 converts to RGB, 1 to grayscale (PIL's luminance).
    """
    pil_mode(channels)
    images = []
    for path in paths:
        image = read_image(path, channels=channels)
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


def unit_to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] → uint8 in [0, 255] (rounded, clipped)."""
    return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def output_paths(names: Sequence[str], folder: str, *, overwrite: bool) -> list[str]:
    """One ``<stem>.png`` path in `folder` per input name, refusing what would lose data.

    Creates `folder`. Raises ConfigError when `folder` exists and is not empty (unless
    `overwrite`), or when two names would be written to one file.
    """
    from jaxgen.validation import ConfigError

    folder = os.path.abspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"output folder {folder} is a file; choose a folder.")
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
        raise ConfigError(f"output folder {folder} is not empty; choose a new folder, empty "
                          "it, or allow overwriting (translate.overwrite=True).")
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


def save_images(images: np.ndarray, paths: Sequence[str]) -> list[str]:
    """Write images ``[N, H, W, C]`` (C = 1 or 3) with values in [0, 1] as PNGs to `paths`
    (e.g. from :func:`output_paths`); returns the paths."""
    if len(images) != len(paths):
        raise ValueError(f"{len(images)} images but {len(paths)} paths.")
    return [write_png(path, image)
            for image, path in zip(unit_to_uint8(images), paths, strict=True)]
