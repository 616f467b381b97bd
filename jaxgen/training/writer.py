"""The run's writer: TensorBoard events, PNG image grids and atomic JSON files (the
progress bar is the training loop's).

Only process 0 writes; every other process gets a writer that does nothing, so callers need
no ``if jax.process_index() == 0`` of their own.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import numpy as np

from jaxgen.data.image_io import write_png


def image_grid(images: np.ndarray, *, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images ``[N, H, W, C]`` with values in [0, 1] into one uint8 image.

    Returns:
      ``[rows·(H+pad)+pad, cols·(W+pad)+pad, C]`` uint8, C in {1, 3}.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape [N, H, W, 1 or 3], got {images.shape}.")
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = image
    return np.round(255 * np.clip(grid, 0.0, 1.0)).astype(np.uint8)


class MetricWriter:
    """Writes scalars to TensorBoard, grids to PNG files and a final JSON summary.

    Folders are made on the first write that needs them, so a writer that is never asked to
    write leaves no trace (a reader of a finished, perhaps read-only, run).

    Args:
      workdir: the run directory; events go to ``tensorboard/``, images to ``images/``.
      enabled: False on processes other than 0.
      tensorboard: write events (scalars, and grids as images); False: grids as PNG only.
    """

    def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True):
        self.workdir = workdir
        self.enabled = enabled
        self.tensorboard = tensorboard
        self._tb = None

    def _events(self):
        if self._tb is None:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(self.workdir, "tensorboard"))
        return self._tb

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled or not self.tensorboard:
            return
        tb = self._events()
        for name, value in scalars.items():
            tb.add_scalar(name, float(value), step)
        tb.flush()

    def write_grid(self, step: int, name: str, images: np.ndarray, **grid_kwargs) -> str | None:
        """Save a grid of ``images`` in [0, 1] as ``images/<name>_<step>.png``; return the path."""
        if not self.enabled:
            return None
        grid = image_grid(images, **grid_kwargs)
        path = os.path.join(self.workdir, "images", f"{name}_{step:07d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_png(path, grid)
        if self.tensorboard:
            self._events().add_image(name, grid, step, dataformats="HWC")
        return path

    def write_summary(self, summary: Mapping) -> str | None:
        """Write ``summary.json`` in the workdir; return its path."""
        if not self.enabled:
            return None
        return write_json(os.path.join(self.workdir, "summary.json"), summary)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def write_json(path: str, payload: Mapping) -> str:
    """Write `payload` as JSON to `path` atomically (a temporary file renamed into place), so
    that a reader (another process of the job, ``experiments.results``) sees the old file or
    the new one, never a half-written one. Returns `path`."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=float)
    os.replace(tmp, path)
    return path
