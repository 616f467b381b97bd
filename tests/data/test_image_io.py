"""Image files: listing, decoding with resize/channel conversion, and the one PNG writer."""

import os

import numpy as np
import pytest

from jaxgen.data import image_io, pipeline


@pytest.mark.parametrize("channels", [3, 1])
def test_save_and_load_image_folder_round_trip(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 6, 5, channels), dtype=np.uint8)
    paths = image_io.save_images(pipeline.to_signed_unit(images), str(tmp_path / "out"),
                                 ["b.jpg", "a.png", "c.jpeg"])
    assert [os.path.basename(p) for p in paths] == ["b.png", "a.png", "c.png"]
    loaded, names = image_io.load_image_folder(str(tmp_path / "out"), size=None,
                                               channels=channels)
    assert names == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(loaded, images[[1, 0, 2]])
    small, _ = image_io.load_image_folder(str(tmp_path / "out"), size=4, channels=3)
    assert small.shape == (3, 4, 4, 3)
