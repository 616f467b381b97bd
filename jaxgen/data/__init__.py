"""Data: TFDS datasets (Fashion-MNIST offline, CycleGAN's unpaired domains) and input pipelines.

Modules: ``fashion_mnist`` (the offline TFDS builder), ``sources`` (paired image shards),
``unpaired`` (CycleGAN's two-domain sources), ``loaders`` (training and evaluation batches, one
epoch rule), ``image_io`` (image files in and out), ``pipeline`` (preprocessing helpers).
Only the functions that read TFDS datasets import TFDS (and TensorFlow under it).
"""

# Where Debian's `dataset-fashion-mnist` package puts the four IDX files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

# What ``data.source`` may name for single-domain images (datasets.ImageDataConfig); every one
# is read by sources.load_image_shards. Here, not in `sources`, so that configs are checked
# without importing TFDS.
IMAGE_SOURCES = ("tfds", "folder", "synthetic")
