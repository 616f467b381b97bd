"""Loaders: one epoch rule (endless permutation streams), deterministic batches by step,
CycleGAN's augmentation, and padded evaluation batches."""

import numpy as np
import pytest

from jaxgen.data import loaders, pipeline, sources


def to_unit(batch):
    return {**batch, "image": pipeline.to_range(batch["image"], "unit")}


def to_uint8(images):
    """[−1, 1] → uint8, the inverse of ``to_range(·, "symmetric")`` on its 256 levels."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8)


# --- TrainLoader -----------------------------------------------------------------------------


def loader(shards, shard_ids, seed=0, batch=4, **kwargs):
    return loaders.TrainLoader(shards=shards, shard_ids=shard_ids, batch_per_shard=batch,
                               seed=seed, preprocess=to_unit, **kwargs)


def labelled(n, offset=0):
    """A shard whose labels are the example ids ``offset … offset + n − 1``."""
    return {"image": np.zeros((n, 2, 2, 1), np.uint8), "label": offset + np.arange(n)}


def test_batches_are_deterministic_shuffled_and_cover_an_epoch():
    shards = sources.load_image_shards(source="synthetic", name="", split="train",
                                       num_shards=2, shard_ids=[0, 1], synthetic_examples=40)
    a, b = loader(shards, [0, 1]), loader(shards, [0, 1])
    assert a.steps_per_epoch == 5  # 20 examples per shard / 4
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


def test_unequal_shards_wrap_independently_and_drop_nothing():
    # Shards of 7 and 6 examples, 3 per step: an epoch is ceil(7 / 3) = 3 steps; each shard's
    # stream shows every example once per pass over it, the shorter one wrapping sooner.
    shards = [labelled(7), labelled(6, offset=100)]
    a = loader(shards, [0, 1], batch=3)
    assert a.steps_per_epoch == 3
    assert loader(shards, [0, 1], batch=3, longest_shard=10).steps_per_epoch == 4
    streams = [[], []]
    for step in range(14):  # 42 positions per shard
        labels = a.batch(step)["label"]
        streams[0] += labels[:3].tolist()
        streams[1] += labels[3:].tolist()
    for stream, n, offset in ((streams[0], 7, 0), (streams[1], 6, 100)):
        passes = [stream[i : i + n] for i in range(0, 42, n)]
        assert all(sorted(p) == list(range(offset, offset + n)) for p in passes)
        assert len({tuple(p) for p in passes}) > 1  # reshuffled every pass


def test_one_epoch_rule_for_every_loader():
    # Both loaders take their indices from the same ExampleStream: TrainLoader's shard is
    # stream 0, UnpairedLoader's domains are streams 0 (x) and 1 (y).
    paired = loader([labelled(5)], [3], seed=7, batch=2)
    unpaired = loaders.UnpairedLoader(x=[id_images(range(5))], y=[id_images(range(10, 15))],
                                      shard_ids=[3], batch_per_shard=2, seed=7, load_size=4,
                                      crop_size=4)
    for step in (0, 1, 2, 9):
        want = loaders.ExampleStream(5, seed=7, shard_id=3, stream=0).indices(step, 2)
        np.testing.assert_array_equal(paired.batch(step)["label"], want)
        assert ids(unpaired.batch(step)["x"]) == want.tolist()
        want_y = loaders.ExampleStream(5, seed=7, shard_id=3, stream=1).indices(step, 2)
        assert ids(unpaired.batch(step)["y"]) == (10 + want_y).tolist()
    assert paired.steps_per_epoch == unpaired.steps_per_epoch == loaders.steps_per_epoch(5, 2)
    with pytest.raises(ValueError, match="stream 0 is empty"):
        loader([labelled(0)], [0])


def test_eval_batches_pad_and_mask():
    shards = [{"image": np.full((5, 2, 2, 1), 255, np.uint8), "label": np.arange(5)}]
    batches = list(loaders.eval_batches(shards, batch_per_shard=2, num_steps=3,
                                         preprocess=to_unit))
    masks = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(masks, [1, 1, 1, 1, 1, 0])
    assert batches[-1]["image"][1].max() == 0.0  # padding
    assert sum(float((b["image"].sum((1, 2, 3)) * b["mask"]).sum()) for b in batches) == 20.0


# --- augmentation ----------------------------------------------------------------------------


def gradient_image(size):
    rows, cols = np.mgrid[0:size, 0:size]
    image = (20 * rows + cols).astype(np.uint8)  # every pixel distinct
    return np.stack([image, image // 2, 255 - image], axis=-1)


def test_augment_crops_and_flips_exactly():
    image = gradient_image(12)
    images = np.repeat(image[None], 64, axis=0)
    out = loaders.augment(images, np.random.default_rng(0), load_size=12, crop_size=8,
                           flip=True)
    assert out.dtype == np.float32 and out.shape == (64, 8, 8, 3)
    assert out.min() >= -1.0 and out.max() <= 1.0
    crops = to_uint8(out)
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
    no_flip = loaders.augment(images[:8], np.random.default_rng(0), load_size=12, crop_size=8,
                               flip=False)
    assert all(to_uint8(c)[0, 1, 0] > to_uint8(c)[0, 0, 0] for c in no_flip)
    same = loaders.augment(images[:2], np.random.default_rng(0), load_size=12, crop_size=12,
                            flip=False)
    np.testing.assert_allclose(same, images[:2] / 127.5 - 1.0, atol=1e-6)


def test_augment_resizes_images_of_another_size():
    images = np.repeat(gradient_image(12)[None], 2, axis=0)
    out = loaders.augment(images, np.random.default_rng(0), load_size=20, crop_size=16,
                           flip=True)
    assert out.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="exceeds load_size"):
        loaders.augment(images, np.random.default_rng(0), load_size=8, crop_size=12, flip=True)


# --- loader ----------------------------------------------------------------------------------


def id_images(ids):
    """Constant 4×4 images whose value is their id: crops and flips keep it readable."""
    return np.broadcast_to(np.asarray(ids, np.uint8)[:, None, None, None], (len(ids), 4, 4, 3))


def ids(batch_part):
    return to_uint8(batch_part)[:, 0, 0, 0].tolist()


def make_loader(x, y, shard_ids, *, seed=0, batch=2):
    return loaders.UnpairedLoader(x=x, y=y, shard_ids=shard_ids, batch_per_shard=batch,
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
    assert loaders.UnpairedLoader(x=X_SHARDS, y=Y_SHARDS, shard_ids=[0, 1], batch_per_shard=2,
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

