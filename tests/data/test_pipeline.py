"""Host-side preprocessing helpers."""

import numpy as np
import pytest

from jaxgen.data import pipeline


def test_shards_of_process():
    assert pipeline.shards_of_process(4, 1, 2) == [2, 3]
    with pytest.raises(ValueError, match="multiple of the process count"):
        pipeline.shards_of_process(3, 0, 2)


def test_to_range_maps_uint8_to_each_input_range():
    images = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(1, 2, 3, 1)
    levels = images.astype(np.float64)
    unit = pipeline.to_range(images, "unit")
    symmetric = pipeline.to_range(images, "symmetric")
    assert unit.dtype == symmetric.dtype == np.float32
    np.testing.assert_allclose(unit, levels / 255, rtol=0, atol=3e-7)  # float32 rounding
    np.testing.assert_allclose(symmetric, levels / 127.5 - 1, rtol=0, atol=3e-7)
    assert (unit.min(), unit.max(), symmetric.min(), symmetric.max()) == (0, 1, -1, 1)
    assert images.dtype == np.uint8 and images.max() == 255  # the input is left alone
    with pytest.raises(ValueError, match="input_range='signed'"):
        pipeline.to_range(images, "signed")
