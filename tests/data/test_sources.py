"""Paired sources: TFDS shards and synthetic images."""

import pytest

from jaxgen.data import sources


def test_unknown_source_is_an_error():
    with pytest.raises(ValueError, match="unknown data source 'csv'"):
        sources.load_image_shards(source="csv", name="", split="train", num_shards=1,
                                  shard_ids=[0])
