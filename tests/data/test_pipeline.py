"""Host-side preprocessing helpers."""

import pytest

from jaxgen.data import pipeline


def test_shards_of_process():
    assert pipeline.shards_of_process(4, 1, 2) == [2, 3]
    with pytest.raises(ValueError, match="multiple of the process count"):
        pipeline.shards_of_process(3, 0, 2)
