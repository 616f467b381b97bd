"""Test data files written by hand."""

import gzip
import os

import numpy as np


def write_idx(directory, prefix, images, labels):
    n = len(labels)
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in (n, 28, 28)))
        f.write(images.astype(np.uint8).tobytes())
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())
