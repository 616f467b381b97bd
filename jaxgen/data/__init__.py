"""Data: TFDS datasets (Fashion-MNIST offline, CycleGAN's unpaired domains) and input pipelines.

Only the functions that read TFDS datasets import TFDS (and TensorFlow under it).
"""

# Where Debian's `dataset-fashion-mnist` package puts the four IDX files.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
