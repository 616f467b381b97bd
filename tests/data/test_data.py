"""The Fashion-MNIST builder on tiny IDX files, sharding, deterministic batches, eval padding."""

import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.data import fashion_mnist, pipeline, sources


def write_idx(directory, prefix, images, labels):
    n = len(labels)
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in (n, 28, 28)))
        f.write(images.astype(np.uint8).tobytes())
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


def test_local_builder_prepares_the_standard_dataset(tmp_path):
    rng = np.random.default_rng(0)
    local = tmp_path / "idx"
    local.mkdir()
    train_images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    write_idx(local, "train", train_images, np.arange(6) % 10)
    write_idx(local, "t10k", rng.integers(0, 256, (4, 28, 28)), np.arange(4))
    data_dir = str(tmp_path / "tfds")
    builder = fashion_mnist.get_builder(data_dir=data_dir, local_dir=str(local))
    assert builder.info.splits["train"].num_examples == 6
    # The prepared data is read back by TFDS's own registered builder.
    train = tfds.as_numpy(tfds.load("fashion_mnist", split="train", data_dir=data_dir,
                                    batch_size=-1))
    np.testing.assert_array_equal(np.sort(train["label"]), np.sort(np.arange(6) % 10))
    order = np.argsort(train["label"])
    np.testing.assert_array_equal(train["image"][order][..., 0], train_images[np.argsort(
        np.arange(6) % 10)])


def test_missing_files_name_the_install_command(tmp_path):
    with pytest.raises(fashion_mnist.DatasetNotFoundError,
                       match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.get_builder(data_dir=str(tmp_path / "tfds"), local_dir=str(tmp_path))


def test_shards_of_process():
    assert pipeline.shards_of_process(4, 1, 2) == [2, 3]
    with pytest.raises(ValueError, match="multiple of the process count"):
        pipeline.shards_of_process(3, 0, 2)


def loader(shards, shard_ids, seed=0):
    return pipeline.TrainLoader(shards=shards, shard_ids=shard_ids, batch_per_shard=4,
                                steps_per_epoch=5, seed=seed, preprocess=pipeline.scale_to_unit)


def test_batches_are_deterministic_shuffled_and_cover_an_epoch():
    shards = sources.load_image_shards(source="synthetic", name="", split="train",
                                       num_shards=2, shard_ids=[0, 1], synthetic_examples=40)
    a, b = loader(shards, [0, 1]), loader(shards, [0, 1])
    for step in (0, 3, 7, 3):  # random access by step, as a resumed run does
        np.testing.assert_array_equal(a.batch(step)["image"], b.batch(step)["image"])
    first = a.batch(0)
    assert first["image"].dtype == np.float32 and first["image"].shape == (8, 28, 28, 1)
    assert 0.0 <= first["image"].min() and first["image"].max() <= 1.0
    seen = np.concatenate([a.batch(s)["label"][:4] for s in range(5)])
    assert sorted(seen) == sorted(shards[0]["label"])  # one epoch = each example once
    assert not np.array_equal(a.batch(0)["image"], a.batch(5)["image"])  # reshuffled
    assert not np.array_equal(a.batch(0)["image"], loader(shards, [0, 1], seed=1).batch(0)[
        "image"])
    # One process reading both shards = two processes' local batches concatenated.
    two_hosts = np.concatenate([loader([shards[0]], [0]).batch(2)["image"],
                                loader([shards[1]], [1]).batch(2)["image"]])
    np.testing.assert_array_equal(a.batch(2)["image"], two_hosts)


def test_eval_batches_pad_and_mask():
    shards = [{"image": np.full((5, 2, 2, 1), 255, np.uint8), "label": np.arange(5)}]
    batches = list(pipeline.eval_batches(shards, batch_per_shard=2, num_steps=3,
                                         preprocess=pipeline.scale_to_unit))
    masks = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(masks, [1, 1, 1, 1, 1, 0])
    assert batches[-1]["image"][1].max() == 0.0  # padding
    assert sum(float((b["image"].sum((1, 2, 3)) * b["mask"]).sum()) for b in batches) == 20.0


def test_unknown_source_is_an_error():
    with pytest.raises(ValueError, match="unknown data source 'csv'"):
        sources.load_image_shards(source="csv", name="", split="train", num_shards=1,
                                  shard_ids=[0])
