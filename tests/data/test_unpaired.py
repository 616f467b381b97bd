"""CycleGAN's unpaired sources: TFDS cycle_gan, image folders, two Fashion-MNIST classes."""

import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen.data import fashion_mnist, image_io, unpaired

# --- tfds ------------------------------------------------------------------------------------


def test_tfds_source_maps_photos_to_x_under_mock_data(tmp_path, monkeypatch):
    requested = []
    even_splits = tfds.even_splits

    def spy(split, n):
        requested.append(split)
        return even_splits(split, n=n)

    monkeypatch.setattr(tfds, "even_splits", spy)
    # Mock images have random sizes (the Image feature is (None, None, 3)); download=True is a
    # no-op under mock_data, which stands in for a prepared dataset.
    with tfds.testing.mock_data(num_examples=3, data_dir=str(tmp_path / "tfds")):
        data = unpaired.load_unpaired_shards(
            source="tfds", split="train", num_shards=2, shard_ids=[0, 1], load_size=12,
            data_dir=str(tmp_path / "tfds"), download=True,
        )
        assert requested == ["trainB", "trainA"]  # X = B = photos, Y = A = Monet
        requested.clear()
        gray = unpaired.load_tfds_domains(split="test", num_shards=1, shard_ids=[0],
                                          load_size=8, channels=1, download=True,
                                          swap_domains=True)
        assert requested == ["testA", "testB"]
    for domain in ("x", "y"):
        assert len(data[domain]) == 2
        for shard in data[domain]:
            assert shard.dtype == np.uint8 and shard.shape == (3, 12, 12, 3)
        assert gray[domain][0].shape == (3, 8, 8, 1)


def test_unprepared_tfds_dataset_names_the_build_command(tmp_path):
    with pytest.raises(fashion_mnist.DatasetNotFoundError,
                       match="tfds build cycle_gan/monet2photo --data_dir"):
        unpaired.load_unpaired_shards(source="tfds", split="train", num_shards=1, shard_ids=[0],
                                      load_size=8, data_dir=str(tmp_path))


# --- folders ---------------------------------------------------------------------------------


def write_folder(folder, colour, count, *, size=(10, 7), ext="png"):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[..., colour] = 200
        image[0, 0] = i  # makes the files distinct
        Image.fromarray(image).save(os.path.join(folder, f"{i:02d}.{ext}"))


def test_folders_source_shards_resizes_and_maps_a_to_x(tmp_path):
    write_folder(tmp_path / "trainA", colour=0, count=3)  # red
    write_folder(tmp_path / "trainB", colour=2, count=5, size=(6, 6), ext="jpg")  # blue
    Image.new("L", (5, 5), 200).save(tmp_path / "trainB" / "gray.jpeg")  # converted to RGB
    (tmp_path / "trainB" / "notes.txt").write_text("not an image")
    data = unpaired.load_unpaired_shards(source="folders", root=str(tmp_path), split="train",
                                         num_shards=2, shard_ids=[0, 1], load_size=8)
    assert [len(s) for s in data["x"]] == [1, 2] and [len(s) for s in data["y"]] == [3, 3]
    assert all(s.shape[1:] == (8, 8, 3) and s.dtype == np.uint8 for s in data["x"] + data["y"])
    x = np.concatenate(data["x"]).astype(float)
    assert x[..., 0].mean() > 150 > 50 > x[..., 2].mean()  # X = A/ (red)
    swapped = unpaired.load_folder_domains(root=str(tmp_path), split="train", num_shards=1,
                                           shard_ids=[0], load_size=4, channels=1,
                                           swap_domains=True)
    assert len(swapped["x"][0]) == 6 and swapped["x"][0].shape[1:] == (4, 4, 1)


def test_folders_source_errors_name_the_missing_or_empty_folder(tmp_path):
    write_folder(tmp_path / "trainA", colour=0, count=2)
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"data.root={tmp_path} has no trainB/ folder")):
        unpaired.load_unpaired_shards(source="folders", root=str(tmp_path), split="train",
                                      num_shards=1, shard_ids=[0], load_size=8)
    (tmp_path / "trainB").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'trainB'} holds no"):
        unpaired.load_unpaired_shards(source="folders", root=str(tmp_path), split="train",
                                      num_shards=1, shard_ids=[0], load_size=8)
    with pytest.raises(ValueError, match="unknown unpaired data source 'csv'"):
        unpaired.load_unpaired_shards(source="csv", split="train", num_shards=1, shard_ids=[0],
                                      load_size=8)


# --- fashion_mnist ---------------------------------------------------------------------------


def test_select_classes_pads_and_keeps_only_the_two_classes():
    labels = np.arange(20) % 10
    images = np.repeat(labels.astype(np.uint8)[:, None, None, None] + 1, 28, axis=1)
    images = np.repeat(images, 28, axis=2)
    domains = unpaired.select_classes(images, labels, class_x=7, class_y=9, channels=3)
    assert domains["x"].shape == (2, 32, 32, 3) and domains["y"].shape == (2, 32, 32, 3)
    assert (domains["x"][:, 2:30, 2:30] == 8).all() and (domains["y"][:, 2:30, 2:30] == 10).all()
    assert domains["x"][:, :2].max() == 0 and domains["x"][:, :, 30:].max() == 0  # zero border
    with pytest.raises(ValueError, match="domains would coincide"):
        unpaired.select_classes(images, labels, class_x=3, class_y=3)


def test_fashion_mnist_source_under_mock_data(tmp_path):
    # Mock labels are random; 200 examples give each class examples in every shard.
    with tfds.testing.mock_data(num_examples=200, data_dir=str(tmp_path / "tfds")):
        data = unpaired.load_unpaired_shards(
            source="fashion_mnist", split="train", num_shards=2, shard_ids=[0, 1], load_size=32,
            channels=1, data_dir=str(tmp_path / "tfds"), local_dir=str(tmp_path),
            download=True,
        )
    for domain in ("x", "y"):
        assert len(data[domain]) == 2
        for shard in data[domain]:
            assert len(shard) > 0 and shard.shape[1:] == (32, 32, 1) and shard.dtype == np.uint8
            assert shard[:, :2].max() == 0 and shard[:, 2:30, 2:30].max() > 0


def test_folders_source_names_a_bad_image_file(tmp_path):
    write_folder(tmp_path / "trainA", colour=0, count=2)
    write_folder(tmp_path / "trainB", colour=2, count=2)
    bad = tmp_path / "trainB" / "01.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated inside the pixel data
    with pytest.raises(image_io.ImageFileError, match=f"image {bad}: the file is truncated"):
        unpaired.load_unpaired_shards(source="folders", root=str(tmp_path), split="train",
                                      num_shards=1, shard_ids=[0], load_size=8)
