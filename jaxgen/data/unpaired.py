"""Unpaired two-domain data for CycleGAN (Zhu et al. 2017, arXiv:1703.10593).

Convention (docs/math.md, CycleGAN): X = photos (``"x"``), Y = Monet paintings (``"y"``);
G: X → Y, F: Y → X. :class:`jaxgen.data.datasets.UnpairedData` opens this process's shards
of both domains as record sources, ``{"x": [shard, ...], "y": [shard, ...]}``; the domains may
have different sizes. Which stored domain (A or B) becomes X:

- ``"tfds"`` — TFDS ``cycle_gan/<a>2<b>`` (default ``monet2photo``) builds split ``trainA`` /
  ``testA`` from the archive's ``trainA/`` (<a>: Monet, 1,072 train) and ``trainB`` / ``testB``
  from ``trainB/`` (<b>: photos, 6,287 train). X = photos, so **X = B, Y = A**;
  ``swap_domains=True`` gives X = A, Y = B.
- ``"folders"`` — a root with ``trainA/``, ``trainB/``, ``testA/``, ``testB/`` image folders.
  As in the reference implementation (G maps A → B): **X = A/, Y = B/**; ``swap_domains=True``
  gives X = B/, Y = A/. The Berkeley ``monet2photo.zip`` has Monet in A/, so X = photos needs
  ``swap_domains=True`` there.
- ``"fashion_mnist"`` — the offline demo: **X = class ``class_x`` (7, sneakers), Y = class
  ``class_y`` (9, ankle boots)** of Fashion-MNIST, zero-padded 28 → 32. Different classes are
  disjoint sets of images, so the domains share no example; the loader's independent shuffles
  remove any pairing by position.

Training reads each image at ``load_size`` square (bicubic when it differs; the reference's
deterministic resize), then crops and flips (:func:`jaxgen.data.loaders.augment`); the test
split is read at ``crop_size`` (the reference evaluates with load_size = crop_size, no crop,
no flip). Batches: :class:`jaxgen.data.loaders.TrainBatches`, as for every kind of data.
"""

SOURCES = ("fashion_mnist", "tfds", "folders")  # + "synthetic" in datasets.UNPAIRED_SOURCES
DOMAINS = ("x", "y")
