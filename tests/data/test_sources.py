"""TFDS datasets as record sources: ArrayRecord read by index (a dataset generated here),
TFRecord read into memory (Fashion-MNIST from tiny IDX files, damaged files named), features
found or named, and the errors for a dataset that is unknown, unprepared or has no image."""

import glob
import itertools
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.data import fashion_mnist, generate, loaders, sources
from jaxgen.data.datasets import ImageData, ImageDataConfig
from jaxgen.data.records import ArraySource, RecordRange
from jaxgen.validation import ConfigError
from tests.data.helpers import write_idx

NUM_TRAIN, NUM_TEST = 40, 8


def tfds_data(*, input_range="unit", seed=0, **config):
    return ImageData(ImageDataConfig(source="tfds", **config), input_range=input_range,
                     seed=seed)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """A TFDS data_dir holding ``blobs8``: 40 train and 8 test 8×8 RGB blobs with 4 classes,
    prepared as ArrayRecord (record k: blob_image(k), label k % 4)."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    generate.write_array_record(data_dir, name="blobs8", num_train=NUM_TRAIN, num_test=NUM_TEST,
                                size=8, num_classes=4)
    return data_dir


def generator_index(image):
    """Which blob_image an 8×8 image is (PNG-encoded records are exact)."""
    for k in range(NUM_TRAIN + NUM_TEST):
        if np.array_equal(image, generate.blob_image(k, size=8)):
            return k
    raise AssertionError("not a generated image")


def test_array_record_dataset_is_read_by_index(blobs):
    data = tfds_data(name="blobs8", data_dir=blobs)
    builder = tfds.builder("blobs8", data_dir=blobs)
    assert sources.is_array_record(builder)
    assert data.image_shape == (8, 8, 3)
    assert data.class_names == ("0", "1", "2", "3") and data.num_classes == 4
    assert data.describe() == {"source": "TFDS blobs8", "image_shape": [8, 8, 3],
                               "class_names": ["0", "1", "2", "3"],
                               "num_examples": {"train": NUM_TRAIN, "test": NUM_TEST}}
    (shard,) = data.sources("train")["image"]
    assert isinstance(shard, RecordRange) and (shard.start, shard.stop) == (0, NUM_TRAIN)
    records = builder.as_data_source(split="train")
    # The records, in index order: every generated train image once, with its label.
    stored = [records[i] for i in range(NUM_TRAIN)]
    train = data.images("train")
    np.testing.assert_array_equal(train["image"], np.stack([r["image"] for r in stored]))
    np.testing.assert_array_equal(train["label"], [r["label"] for r in stored])
    ks = [generator_index(image) for image in train["image"]]
    assert sorted(ks) == list(range(NUM_TRAIN))
    assert train["label"].tolist() == [k % 4 for k in ks]
    test = data.images("test")
    assert sorted(generator_index(image) for image in test["image"]) == list(
        range(NUM_TRAIN, NUM_TRAIN + NUM_TEST))
    # A training batch is the records at the stream's indices.
    loader = data.train_loader(8, 1)
    stream = loaders.ExampleStream(NUM_TRAIN, seed=0, shard_id=0)
    for step in (0, 4, 5):
        batch = loader.batch(step)
        indices = stream.indices(step, 8)
        np.testing.assert_array_equal(batch["image"], train["image"][indices] / np.float32(255))
        np.testing.assert_array_equal(batch["label"], train["label"][indices])


def test_array_record_shards_are_ranges_of_the_split(blobs):
    data = tfds_data(name="blobs8", data_dir=blobs, num_shards=4, image_size=4, channels=1)
    shards = data.sources("train")["image"]
    assert [(s.start, s.stop) for s in shards] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert data.image_shape == (4, 4, 1)
    whole = tfds_data(name="blobs8", data_dir=blobs).images("train")
    part = data.images("train", start=10, stop=20)
    assert part["image"].shape == (10, 4, 4, 1)
    np.testing.assert_array_equal(part["label"], whole["label"][10:20])
    batches, steps = data.eval_batches("image", global_batch=8, max_examples=0,
                                       num_local_devices=1, what="eval")
    batches = list(batches)
    assert steps == 1 and len(batches) == 1  # 2 test records per shard, 2 per shard per step
    assert batches[0]["image"].shape == (8, 4, 4, 1) and batches[0]["mask"].sum() == 8


def listing(*features):
    """A pattern for a feature listing, in any order: "a (A), b (B)"."""
    return "(?:" + "|".join(re.escape(", ".join(order))
                            for order in itertools.permutations(features)) + ")"


def test_features_are_found_or_named(blobs):
    builder = tfds.builder("blobs8", data_dir=blobs)
    keys = sources._feature_keys  # noqa: SLF001
    assert keys(builder, "blobs8", "", "") == ("image", "label")
    assert keys(builder, "blobs8", "image", "label") == ("image", "label")
    assert keys(builder, "blobs8", "", "none") == ("image", None)
    features = "its features: " + listing("image (Image)", "label (ClassLabel)") + r"\."
    with pytest.raises(ConfigError, match=r"data.image_key='photo' is not a feature of blobs8; "
                                          + features):
        tfds_data(name="blobs8", data_dir=blobs, image_key="photo").image_shape  # noqa: B018
    with pytest.raises(ConfigError, match=r"data.label_key='class' is not a feature of blobs8; "
                                          + features):
        tfds_data(name="blobs8", data_dir=blobs, label_key="class").image_shape  # noqa: B018
    with pytest.raises(ConfigError, match=r"TFDS dataset blobs8 has no split 'validation'; its "
                                          r"splits: (train, test|test, train)\."):
        sources.tfds_shards(name="blobs8", split="validation", num_shards=1, shard_ids=[0],
                            data_dir=blobs)
    unlabelled = tfds_data(name="blobs8", data_dir=blobs, label_key="none")
    assert unlabelled.num_classes == 0 and unlabelled.class_names == ()
    assert set(unlabelled.train_loader(4, 1).batch(0)) == {"image"}
    assert set(unlabelled.images("test")) == {"image"}


@pytest.fixture(scope="module")
def no_images(tmp_path_factory):
    """A TFDS data_dir holding ``vectors``, whose examples are 4-vectors with a label."""
    data_dir = str(tmp_path_factory.mktemp("vectors"))

    class Vectors(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "pixels": tfds.features.Tensor(shape=(4,), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=2)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(2):
                yield i, {"pixels": np.full(4, i, np.uint8), "label": i}

    Vectors.name = "vectors"
    Vectors(data_dir=data_dir, file_format="array_record").download_and_prepare()
    return data_dir


def test_a_dataset_without_an_image_feature_is_an_error_listing_its_features(no_images):
    features = "its features: " + listing("label (ClassLabel)", "pixels (Tensor)")
    with pytest.raises(ConfigError, match=r"TFDS dataset vectors has no image feature; "
                                          + features
                                          + r"\. Name one with --config\.data\.image_key\."):
        tfds_data(name="vectors", data_dir=no_images).image_shape  # noqa: B018
    with pytest.raises(ConfigError, match=r"data.image_key='pixels' of vectors has shape "
                                          r"\(4,\), not an image's \(H, W, C\); " + features):
        tfds_data(name="vectors", data_dir=no_images, image_key="pixels").image_shape  # noqa: B018


def test_unknown_and_unprepared_datasets_name_the_fix(tmp_path):
    with pytest.raises(fashion_mnist.DatasetNotFoundError,
                       match=r"data.name='no_such_dataset_xyz' is neither a TFDS dataset nor "
                             rf"prepared in {tmp_path}; tfds.list_builders\(\) lists"):
        tfds_data(name="no_such_dataset_xyz", data_dir=str(tmp_path)).image_shape  # noqa: B018
    with pytest.raises(fashion_mnist.DatasetNotFoundError, match=r"did you mean .*\bmnist\b"):
        tfds_data(name="mnistt", data_dir=str(tmp_path)).image_shape  # noqa: B018
    with pytest.raises(fashion_mnist.DatasetNotFoundError,
                       match=r"TFDS dataset 'mnist' is not prepared in .*; prepare it with "
                             r"`tfds build mnist --file_format=array_record --data_dir=\.\.\.`"):
        tfds_data(name="mnist", data_dir=str(tmp_path)).image_shape  # noqa: B018


# --- Fashion-MNIST: TFRecord, read into memory -----------------------------------------------

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A Fashion-MNIST data_dir prepared from tiny IDX files (40 train, 4 test examples)."""
    root = tmp_path_factory.mktemp("prepared")
    local = root / "idx"
    local.mkdir()
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (40, 28, 28)).astype(np.uint8)
    write_idx(local, "train", train, np.arange(40) % 10)
    write_idx(local, "t10k", rng.integers(0, 256, (4, 28, 28)), np.arange(4))
    fashion_mnist.get_builder(data_dir=str(root / "tfds"), local_dir=str(local))
    return root, train


def test_fashion_mnist_classes_shape_and_padding(prepared):
    root, train = prepared
    data = tfds_data(name="fashion_mnist", data_dir=str(root / "tfds"),
                     local_dir=str(root / "idx"), image_size=32, resize="pad", num_shards=2)
    assert not sources.is_array_record(tfds.builder("fashion_mnist",
                                                    data_dir=str(root / "tfds")))
    assert data.class_names == FASHION_CLASSES and data.num_classes == 10
    assert data.info.image_shape == (28, 28, 1) and data.image_shape == (32, 32, 1)
    shards = data.sources("train")["image"]
    assert all(isinstance(s, ArraySource) for s in shards) and [len(s) for s in shards] == [
        20, 20]
    got = data.images("train")
    assert got["image"].shape == (40, 32, 32, 1)
    assert got["image"][:, :2].max() == 0 and got["image"][:, :, 30:].max() == 0  # border
    inner = got["image"][:, 2:30, 2:30, 0]
    # The IDX images, each with its label, in TFDS's order.
    want = {train[i].tobytes(): i % 10 for i in range(40)}
    assert {im.tobytes(): int(label) for im, label in zip(inner, got["label"],
                                                          strict=True)} == want


def load(data_dir, local):
    shards, _ = sources.tfds_shards(name="fashion_mnist", split="train", num_shards=1,
                                    shard_ids=[0], data_dir=str(data_dir), local_dir=str(local))
    return shards[0]


def damage(data_dir, how):
    (path,) = glob.glob(os.path.join(data_dir, "fashion_mnist", "*", "*-train.tfrecord*"))
    data = bytearray(open(path, "rb").read())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        data[len(data) // 2] ^= 0xFF
    if how == "missing":
        os.remove(path)
    else:
        open(path, "wb").write(bytes(data))
    return path


@pytest.mark.parametrize("how, problem", [
    ("truncated", r"is truncated: it holds \d+ of its 40 records"),
    ("corrupt", r"is corrupt \(corrupted record at \d+\)"),
    ("missing", "is missing"),
])
def test_damaged_tfrecord_names_the_file_and_the_fix(prepared, tmp_path, how, problem):
    root, _ = prepared
    data_dir = tmp_path / "tfds"
    shutil.copytree(root / "tfds", data_dir)
    assert len(load(data_dir, root / "idx")) == 40
    path = damage(data_dir, how)
    folder = os.path.dirname(path)
    with pytest.raises(fashion_mnist.DatasetFileError,
                       match=rf"TFDS dataset fashion_mnist: file {path} {problem}\. Delete the "
                             rf"folder {folder} and prepare the dataset again"):
        load(data_dir, root / "idx")
    shutil.rmtree(folder)  # as the message says; the next load rebuilds it
    assert len(load(data_dir, root / "idx")) == 40
