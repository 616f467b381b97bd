"""CycleGAN's unpaired data: TFDS cycle_gan (X = B), trainA/ trainB/ folders (X = A), two
Fashion-MNIST classes and toy images, read as two streams "x" and "y" in the family's input
range."""

import os
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen.data import fashion_mnist
from jaxgen.data.datasets import UnpairedData, UnpairedDataConfig
from jaxgen.validation import ConfigError
from tests.data.helpers import write_idx


def unpaired_data(*, input_range="symmetric", seed=0, **config):
    return UnpairedData(UnpairedDataConfig(**config), input_range=input_range, seed=seed)


def write_folder(folder, colour, count, *, size=(10, 7), ext="png"):
    """`count` images of one colour channel at 200 (`size` is width, height)."""
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[..., colour] = 200
        Image.fromarray(image).save(os.path.join(folder, f"{i:02d}.{ext}"))


@pytest.fixture
def folders(tmp_path):
    """trainA/: 3 red PNGs (10×7); trainB/: 5 blue JPEGs (6×6), a grey JPEG and a text file;
    testA/, testB/: 2 each."""
    write_folder(tmp_path / "trainA", colour=0, count=3)
    write_folder(tmp_path / "trainB", colour=2, count=5, size=(6, 6), ext="jpg")
    Image.new("L", (5, 5), 200).save(tmp_path / "trainB" / "grey.jpeg")  # read as RGB
    (tmp_path / "trainB" / "notes.txt").write_text("not an image")
    write_folder(tmp_path / "testA", colour=0, count=2)
    write_folder(tmp_path / "testB", colour=2, count=2, ext="jpg")
    return tmp_path


def folder_config(root, **config):
    return {"source": "folders", "root": str(root), "load_size": 8, "crop_size": 8,
            "channels": 3, **config}


def test_folders_map_a_to_x_and_read_each_domain_at_the_crop_size(folders):
    data = unpaired_data(**folder_config(folders, num_shards=2, flip=False))
    train = data.sources("train")
    assert [len(s) for s in train["x"]] == [1, 2] and [len(s) for s in train["y"]] == [3, 3]
    assert data.describe() == {"source": "folders", "image_shape": [8, 8, 3],
                               "num_examples": {"train": {"x": 3, "y": 6},
                                                "test": {"x": 2, "y": 2}}}
    loader = data.train_loader(4, 1)
    assert loader.steps_per_epoch == 2  # ceil(longest stream 3 / 2 per shard)
    batch = loader.batch(0)
    assert set(batch) == {"x", "y"}
    assert batch["x"].shape == batch["y"].shape == (4, 8, 8, 3)
    red = np.float32(200) / np.float32(127.5) - 1  # [−1, 1]
    np.testing.assert_allclose(batch["x"][..., 0], red, atol=1e-6)  # X = A/ (red PNGs)
    np.testing.assert_array_equal(batch["x"][..., 1:], -1.0)
    np.testing.assert_allclose(batch["y"][..., 2], red, atol=4 / 127.5)  # Y = B/: blue or grey
    examples = data.examples("y", 5)
    assert examples.shape == (2, 8, 8, 3)  # the test split holds 2
    np.testing.assert_allclose(examples[..., 2], red, atol=4 / 127.5)
    assert examples[..., 0].max() < -0.9
    batches, steps = data.eval_batches("x", global_batch=4, max_examples=0, num_local_devices=1,
                                       what="eval")
    (only,) = list(batches)
    assert steps == 1 and only["image"].shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(only["mask"], [1, 0, 1, 0])  # 1 test image per shard
    np.testing.assert_allclose(only["image"][[0, 2], ..., 0], red, atol=1e-6)


def test_folders_swap_domains_channels_and_the_unit_range(folders):
    swapped = unpaired_data(**folder_config(folders, swap_domains=True, channels=1,
                                            load_size=6, crop_size=4), input_range="unit")
    assert swapped.image_shape == (4, 4, 1)
    assert swapped.num_examples("train", "x") == 6 and swapped.num_examples("train", "y") == 3
    batch = swapped.train_loader(6, 1).batch(0)
    assert batch["x"].shape == (6, 4, 4, 1) and batch["y"].shape == (6, 4, 4, 1)
    grey_of_red = round(200 * 0.299)  # luminance of (200, 0, 0)
    np.testing.assert_allclose(batch["y"], grey_of_red / np.float32(255), atol=1e-6)  # Y = A/
    # X = B/: blue JPEGs (luminance of (0, 0, 200): 23) and the grey one (200).
    levels = sorted({int(v) for v in np.round(batch["x"].mean((1, 2, 3)) * 255)})
    assert levels[0] in range(21, 26) and levels[-1] in range(198, 203), levels


def test_folders_crop_and_flip_for_training_only(folders):
    for flip in (False, True):
        data = unpaired_data(**folder_config(folders, load_size=12, crop_size=8, flip=flip))
        assert data.reading("train", "x").size == 12 and data.reading("test", "x").size == 8
        batch = data.train_loader(3, 1).batch(0)
        assert batch["x"].shape == (3, 8, 8, 3)
        np.testing.assert_allclose(batch["x"][..., 0], np.float32(200) / 127.5 - 1, atol=1e-6)


def test_folders_errors_name_the_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"data.root={tmp_path} has no trainA/ folder")):
        unpaired_data(**folder_config(tmp_path)).sources("train")
    write_folder(tmp_path / "trainA", colour=0, count=2)
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"data.root={tmp_path} has no trainB/ folder")):
        unpaired_data(**folder_config(tmp_path)).sources("train")
    (tmp_path / "trainB").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'trainB'} holds no image files"):
        unpaired_data(**folder_config(tmp_path)).sources("train")
    with pytest.raises(ConfigError, match="data.source='folders' needs data.root"):
        UnpairedDataConfig(source="folders")
    with pytest.raises(ConfigError, match="data.source"):
        UnpairedDataConfig(source="csv")


def test_folders_replace_and_count_a_bad_image_file(folders):
    bad = folders / "trainA" / "01.png"
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad)
    bad.write_bytes(bad.read_bytes()[:400])  # truncated inside the pixel data
    data = unpaired_data(**folder_config(folders, max_bad_fraction=0.5))
    loader = data.train_loader(3, 1)
    batches = list(loader.iterate(0, 2))
    assert [b["x"].shape for b in batches] == [(3, 8, 8, 3)] * 2
    report = loader.bad_records.report()
    # Two passes over A, each meeting the bad file once: 12 examples and 2 bad reads.
    assert report["records_read"] == 14 and report["bad_records"] == 2
    assert report["first_bad_records"] == [str(bad)]


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_domains_in_each_input_range():
    config = {"source": "synthetic", "load_size": 12, "crop_size": 8, "channels": 3,
              "synthetic_examples": 8}
    unit = unpaired_data(input_range="unit", **config).train_loader(4, 1).batch(3)
    symmetric = unpaired_data(input_range="symmetric", **config).train_loader(4, 1).batch(3)
    for domain in ("x", "y"):
        assert unit[domain].shape == (4, 8, 8, 3) and unit[domain].dtype == np.float32
        assert unit[domain].min() == 0.0 and 0.5 < unit[domain].max() <= 1.0
        assert symmetric[domain].min() == -1.0 and symmetric[domain].max() <= 1.0
        np.testing.assert_allclose(symmetric[domain], 2 * unit[domain] - 1, atol=1e-6)
    assert not np.array_equal(unit["x"], unit["y"])  # a different stream per domain
    data = unpaired_data(**config)
    assert data.describe()["num_examples"] == {"train": {"x": 8, "y": 8},
                                               "test": {"x": 8, "y": 8}}
    assert data.examples("x", 3).shape == (3, 8, 8, 3)


# --- TFDS cycle_gan --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """A TFDS data_dir holding ``cycle``, a CycleGAN-like dataset in ArrayRecord: splits
    trainA (3, red), trainB (5, blue), testA (2, red), testB (2, blue) of 8×8 images."""
    data_dir = str(tmp_path_factory.mktemp("cycle"))
    sizes = {"trainA": 3, "trainB": 5, "testA": 2, "testB": 2}

    class Cycle(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3))}))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in sizes}

        def _generate_examples(self, split):
            for i in range(sizes[split]):
                image = np.zeros((8, 8, 3), np.uint8)
                image[..., 0 if split.endswith("A") else 2] = 200
                image[0, 0, 1] = i  # distinct records
                yield i, {"image": image}

    Cycle.name = "cycle"
    Cycle(data_dir=data_dir, file_format="array_record").download_and_prepare()
    return data_dir


def test_tfds_source_maps_b_photos_to_x(cycle):
    config = {"source": "tfds", "name": "cycle", "data_dir": cycle, "load_size": 8,
              "crop_size": 8, "channels": 3, "flip": False}
    data = unpaired_data(**config)
    assert data.describe()["num_examples"] == {"train": {"x": 5, "y": 3},
                                               "test": {"x": 2, "y": 2}}  # X = B
    batch = data.train_loader(4, 1).batch(0)
    red = np.float32(200) / np.float32(127.5) - 1
    np.testing.assert_allclose(batch["x"][..., 2], red, atol=1e-6)  # B: blue
    np.testing.assert_allclose(batch["y"][..., 0], red, atol=1e-6)  # A: red
    np.testing.assert_array_equal(batch["x"][..., 0], -1.0)
    swapped = unpaired_data(swap_domains=True, **{**config, "channels": 1, "crop_size": 4},
                            input_range="unit")
    assert swapped.num_examples("train", "x") == 3  # X = A
    examples = swapped.examples("x", 5)
    assert examples.shape == (2, 4, 4, 1)
    np.testing.assert_allclose(examples, round(200 * 0.299) / np.float32(255), atol=1e-6)


def test_unprepared_tfds_dataset_names_the_build_command(tmp_path):
    data = unpaired_data(source="tfds", data_dir=str(tmp_path))
    with pytest.raises(fashion_mnist.DatasetNotFoundError,
                       match=r"tfds build cycle_gan/monet2photo --file_format=array_record "
                             r"--data_dir"):
        data.sources("train")


# --- two Fashion-MNIST classes ---------------------------------------------------------------


def test_fashion_mnist_classes_are_the_two_domains_padded(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 10
    images = rng.integers(1, 256, (40, 28, 28)).astype(np.uint8)
    write_idx(tmp_path, "train", images, labels)
    write_idx(tmp_path, "t10k", images[:20], labels[:20])
    data = unpaired_data(source="fashion_mnist", data_dir=str(tmp_path / "tfds"),
                         local_dir=str(tmp_path), load_size=32, crop_size=32, flip=False,
                         channels=1, input_range="unit")
    assert data.num_examples("train", "x") == data.num_examples("train", "y") == 4
    batch = data.train_loader(4, 1).batch(0)
    for domain, cls in (("x", 7), ("y", 9)):
        got = np.round(batch[domain] * 255).astype(np.uint8)
        assert got.shape == (4, 32, 32, 1)
        assert got[:, :2].max() == 0 and got[:, :, 30:].max() == 0  # zero border, 28 → 32
        want = {im.tobytes() for im in images[labels == cls]}
        assert {im.tobytes() for im in got[:, 2:30, 2:30, 0]} == want  # exactly class cls
    with pytest.raises(ConfigError, match="domains would coincide"):
        UnpairedDataConfig(class_x=3, class_y=3)
