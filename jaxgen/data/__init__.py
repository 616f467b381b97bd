"""Data: any image dataset (TFDS by name, image folders, toy images), streamed for every family.

Modules: ``records`` (random-access sources: folders, arrays, ranges; converting an image to the
run's shape), ``sources`` (TFDS datasets as sources: ArrayRecord by index, TFRecord in memory),
``fashion_mnist`` (the offline TFDS builder), ``unpaired`` (CycleGAN's domain conventions),
``loaders`` (training and evaluation batches through grain, one epoch rule, bad records),
``datasets`` (the data a run uses, per family kind), ``image_io`` (image files in and out),
``pipeline`` (shards of a process, ranges, toy images), ``generate`` (datasets on disk for
tests and smoke runs). Only the functions that read TFDS datasets import TFDS.

For your own training loop: :func:`image_batches` (and :func:`open_images`).
"""

# Where Debian's `dataset-fashion-mnist` package puts the four IDX files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

# What ``data.source`` may name for single-domain images (datasets.ImageDataConfig); every one
# is opened by datasets.ImageData. Here, not in `sources`, so that configs are checked
# without importing TFDS.
IMAGE_SOURCES = ("tfds", "folder", "synthetic")


def open_images(*, seed: int = 0, input_range: str = "unit", **settings):
    """Single-domain image data for your own loop: ``settings`` are the ``data`` section's
    (:class:`jaxgen.data.datasets.ImageDataConfig`: ``source``, ``name``, ``path``,
    ``image_size``, ``channels``, ``workers`` …). Returns an
    :class:`~jaxgen.data.datasets.ImageData` with ``image_shape``, ``class_names``,
    ``describe()``, ``train_loader()`` and ``eval_batches()``; an unknown setting is a
    :class:`~jaxgen.validation.ConfigError` naming it."""
    import dataclasses

    from jaxgen.data.datasets import ImageData, ImageDataConfig
    from jaxgen.validation import ConfigError

    known = {f.name for f in dataclasses.fields(ImageDataConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"unknown data setting(s) {unknown}; the settings are "
                          f"{sorted(known)}.")
    return ImageData(ImageDataConfig(**settings), input_range=input_range, seed=seed)


def image_batches(batch_size: int, *, num_steps: int, start_step: int = 0, seed: int = 0,
                  input_range: str = "unit", num_local_devices: int | None = None,
                  **settings):
    """The training batches of steps ``start_step … num_steps − 1`` for your own loop.

    Each is this process's part of the global batch ``batch_size`` (``{"image"}`` float32
    ``[b, S, S, C]`` in `input_range`, with int32 ``"label"`` when the data has classes), a
    pure function of (seed, step, shard): resume by passing the step you stopped at. Shuffled
    per epoch, read ahead by threads or ``workers`` processes, bad files replaced and counted
    (the epoch rule and the rest: :mod:`jaxgen.data.loaders`). ``settings`` as for
    :func:`open_images`.

    Example::

        from jaxgen import data
        for step, batch in enumerate(data.image_batches(
                128, num_steps=1000, source="folder", path="DIR", image_size=64)):
            ...
    """
    import jax

    images = open_images(seed=seed, input_range=input_range, **settings)
    loader = images.train_loader(batch_size, num_local_devices or jax.local_device_count())
    return loader.iterate(start_step, num_steps)
