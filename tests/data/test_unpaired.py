"""CycleGAN's unpaired data: the three sources, augmentation, per-domain epochs, folder I/O."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgen.data import fashion_mnist, unpaired

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
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'trainB'} does not exist"):
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


# --- augmentation ----------------------------------------------------------------------------


def gradient_image(size):
    rows, cols = np.mgrid[0:size, 0:size]
    image = (20 * rows + cols).astype(np.uint8)  # every pixel distinct
    return np.stack([image, image // 2, 255 - image], axis=-1)


def test_augment_crops_and_flips_exactly():
    image = gradient_image(12)
    images = np.repeat(image[None], 64, axis=0)
    out = unpaired.augment(images, np.random.default_rng(0), load_size=12, crop_size=8,
                           flip=True)
    assert out.dtype == np.float32 and out.shape == (64, 8, 8, 3)
    assert out.min() >= -1.0 and out.max() <= 1.0
    crops = unpaired.to_uint8(out)
    flipped, offsets = 0, set()
    for crop in crops:
        top, left = divmod(int(crop[0, 0, 0]), 20)
        if left + 7 < 12 and np.array_equal(crop, image[top : top + 8, left : left + 8]):
            offsets.add((top, left))
            continue
        left -= 7  # a flipped crop starts with its rightmost column
        assert np.array_equal(crop, image[top : top + 8, left : left + 8][:, ::-1])
        flipped += 1
        offsets.add((top, left))
    assert 10 < flipped < 54 and len(offsets) > 10
    no_flip = unpaired.augment(images[:8], np.random.default_rng(0), load_size=12, crop_size=8,
                               flip=False)
    assert all(unpaired.to_uint8(c)[0, 1, 0] > unpaired.to_uint8(c)[0, 0, 0] for c in no_flip)
    same = unpaired.augment(images[:2], np.random.default_rng(0), load_size=12, crop_size=12,
                            flip=False)
    np.testing.assert_allclose(same, images[:2] / 127.5 - 1.0, atol=1e-6)


def test_augment_resizes_images_of_another_size():
    images = np.repeat(gradient_image(12)[None], 2, axis=0)
    out = unpaired.augment(images, np.random.default_rng(0), load_size=20, crop_size=16,
                           flip=True)
    assert out.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="exceeds load_size"):
        unpaired.augment(images, np.random.default_rng(0), load_size=8, crop_size=12, flip=True)


# --- loader ----------------------------------------------------------------------------------


def id_images(ids):
    """Constant 4×4 images whose value is their id: crops and flips keep it readable."""
    return np.broadcast_to(np.asarray(ids, np.uint8)[:, None, None, None], (len(ids), 4, 4, 3))


def ids(batch_part):
    return unpaired.to_uint8(batch_part)[:, 0, 0, 0].tolist()


def make_loader(x, y, shard_ids, *, seed=0, batch=2):
    return unpaired.UnpairedLoader(x=x, y=y, shard_ids=shard_ids, batch_per_shard=batch,
                                   seed=seed, load_size=4, crop_size=4)


X_SHARDS = [id_images(range(0, 5)), id_images(range(10, 14))]
Y_SHARDS = [id_images(range(100, 103)), id_images(range(110, 113))]


def test_loader_batches_are_pure_functions_of_seed_shard_and_step():
    a, b = make_loader(X_SHARDS, Y_SHARDS, [0, 1]), make_loader(X_SHARDS, Y_SHARDS, [0, 1])
    for step in (0, 7, 3, 7, 100):  # random access by step, as a resumed run does
        for domain in ("x", "y"):
            np.testing.assert_array_equal(a.batch(step)[domain], b.batch(step)[domain])
    first = a.batch(0)
    assert first["x"].shape == (4, 4, 4, 3) and first["y"].shape == (4, 4, 4, 3)
    assert first["x"].dtype == np.float32
    assert ids(a.batch(0)["x"]) != ids(a.batch(1)["x"])
    seeds = [ids(make_loader(X_SHARDS, Y_SHARDS, [0, 1], seed=s).batch(0)["x"]) for s in (0, 1)]
    assert seeds[0] != seeds[1]
    # One process reading both shards = two processes' local batches concatenated.
    for domain in ("x", "y"):
        two_hosts = np.concatenate([make_loader(X_SHARDS[:1], Y_SHARDS[:1], [0]).batch(5)[domain],
                                    make_loader(X_SHARDS[1:], Y_SHARDS[1:], [1]).batch(5)[domain]])
        np.testing.assert_array_equal(a.batch(5)[domain], two_hosts)


def test_each_domain_cycles_through_its_own_epochs():
    loader = make_loader(X_SHARDS, Y_SHARDS, [0, 1])
    assert loader.steps_per_epoch == 3  # ceil(longest shard 5 / 2)
    assert make_loader(X_SHARDS, Y_SHARDS, [0, 1], batch=1).steps_per_epoch == 5
    assert unpaired.UnpairedLoader(x=X_SHARDS, y=Y_SHARDS, shard_ids=[0, 1], batch_per_shard=2,
                                   seed=0, load_size=4, crop_size=4,
                                   longest_shard=9).steps_per_epoch == 5
    x_stream, y_stream = [], []
    for step in range(15):  # 30 positions per shard
        batch = loader.batch(step)
        x_stream += ids(batch["x"])[:2]  # shard 0's part
        y_stream += ids(batch["y"])[:2]
    x_epochs = [x_stream[i : i + 5] for i in range(0, 30, 5)]
    y_epochs = [y_stream[i : i + 3] for i in range(0, 30, 3)]
    assert all(sorted(e) == list(range(5)) for e in x_epochs)  # each x once per x-epoch
    assert all(sorted(e) == [100, 101, 102] for e in y_epochs)  # each y once per y-epoch
    assert len({tuple(e) for e in x_epochs}) > 1 and len({tuple(e) for e in y_epochs}) > 1
    # The domains' shuffles are independent: equal-sized domains are not in the same order.
    twin = make_loader([id_images(range(8))], [id_images(range(8))], [0], batch=8).batch(0)
    assert ids(twin["x"]) != ids(twin["y"])


def test_loader_batch_larger_than_a_domain_straddles_epochs():
    loader = make_loader([id_images(range(5))], [id_images(range(7))], [0], batch=7)
    stream = ids(loader.batch(0)["x"]) + ids(loader.batch(1)["x"])
    epochs = [stream[i : i + 5] for i in range(0, 14, 5)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(5))
    assert epochs[0] != epochs[1]  # batch 0 already reaches into the next permutation
    assert len(set(epochs[2])) == 4
    with pytest.raises(ValueError, match="empty y shard"):
        make_loader([id_images(range(3))], [id_images([])], [0])


# --- evaluation and folder I/O ---------------------------------------------------------------


def test_iterate_domain_pads_and_masks():
    shards = [id_images(range(5)), id_images(range(10, 13))]
    batches = list(unpaired.iterate_domain(shards, batch_per_shard=2))
    assert len(batches) == 3 and batches[0]["image"].shape == (4, 4, 4, 3)
    mask = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0])
    real = [i for b in batches for i, m in zip(ids(b["image"]), b["mask"], strict=True) if m]
    assert sorted(real) == [0, 1, 2, 3, 4, 10, 11, 12]
    resized = next(unpaired.iterate_domain(shards, batch_per_shard=2,
                                           preprocess=unpaired.make_eval_preprocess(6)))
    assert resized["image"].shape == (4, 6, 6, 3)


@pytest.mark.parametrize("channels", [3, 1])
def test_save_and_load_image_folder_round_trip(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 6, 5, channels), dtype=np.uint8)
    paths = unpaired.save_images(unpaired.to_signed_unit(images), str(tmp_path / "out"),
                                 ["b.jpg", "a.png", "c.jpeg"])
    assert [os.path.basename(p) for p in paths] == ["b.png", "a.png", "c.png"]
    loaded, names = unpaired.load_image_folder(str(tmp_path / "out"), size=None,
                                               channels=channels)
    assert names == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(loaded, images[[1, 0, 2]])
    small, _ = unpaired.load_image_folder(str(tmp_path / "out"), size=4, channels=3)
    assert small.shape == (3, 4, 4, 3)
