"""Loaders: one epoch rule (endless permutation streams), deterministic batches by step, bad
records replaced and counted, CycleGAN's augmentation, and padded evaluation batches.

Sources here are in memory (:class:`ArraySource`) whose images or labels carry the example's
id, so every check is on which example landed where."""

import numpy as np
import pytest

from jaxgen.data import loaders, pipeline
from jaxgen.data.loaders import Reading, TrainBatches
from jaxgen.data.records import ArraySource

AS_STORED_GREY = Reading(size=0, channels=1)


def id_images(ids, size=4, channels=3):
    """Constant images whose value is their id: crops and flips keep it readable."""
    ids = np.asarray(list(ids), np.uint8)
    return np.ascontiguousarray(np.broadcast_to(ids[:, None, None, None],
                                                (len(ids), size, size, channels)))


def labelled(n, offset=0):
    """A shard whose labels (and grey pixel values) are the ids ``offset … offset + n − 1``."""
    ids = offset + np.arange(n)
    return ArraySource(id_images(ids, size=2, channels=1), ids, name=f"ids {offset}")


def ids(part, input_range="unit"):
    """The ids of a batch part (float images in `input_range`)."""
    scale, shift = (255.0, 0.0) if input_range == "unit" else (127.5, 1.0)
    return np.round((np.asarray(part)[:, 0, 0, 0] + shift) * scale).astype(int).tolist()


def paired(shards, shard_ids, *, seed=0, batch=4, **kwargs):
    return TrainBatches(domains={"image": shards}, shard_ids=shard_ids, batch_per_shard=batch,
                        seed=seed, reading=AS_STORED_GREY, input_range="unit", **kwargs)


def unpaired(x, y, shard_ids, *, seed=0, batch=2, **kwargs):
    return TrainBatches(domains={"x": [ArraySource(s) for s in x],
                                 "y": [ArraySource(s) for s in y]},
                        shard_ids=shard_ids, batch_per_shard=batch, seed=seed,
                        reading=Reading(size=4, channels=3, resize="squash"),
                        input_range="symmetric", **kwargs)


# --- the epoch rule --------------------------------------------------------------------------


def test_batches_are_deterministic_shuffled_and_cover_an_epoch():
    shards = [labelled(20), labelled(20, offset=20)]
    a, b = paired(shards, [0, 1]), paired(shards, [0, 1])
    assert a.steps_per_epoch == 5  # 20 examples per shard / 4
    for step in (0, 3, 7, 3):  # random access by step, as a resumed run does
        np.testing.assert_array_equal(a.batch(step)["image"], b.batch(step)["image"])
    first = a.batch(0)
    assert first["image"].dtype == np.float32 and first["image"].shape == (8, 2, 2, 1)
    assert first["label"].dtype == np.int32
    assert ids(first["image"]) == first["label"].tolist()  # images and labels stay together
    seen = [a.batch(s)["label"] for s in range(5)]
    assert sorted(np.concatenate([s[:4] for s in seen])) == list(range(20))  # shard 0, once
    assert sorted(np.concatenate([s[4:] for s in seen])) == list(range(20, 40))  # shard 1
    assert a.batch(0)["label"].tolist() != a.batch(5)["label"].tolist()  # reshuffled
    assert a.batch(0)["label"].tolist() != paired(shards, [0, 1], seed=1).batch(0)[
        "label"].tolist()
    # One process reading both shards = two processes' local batches concatenated.
    for step in (2, 11):
        two_hosts = [paired([shards[0]], [0]).batch(step), paired([shards[1]], [1]).batch(step)]
        for key in ("image", "label"):
            np.testing.assert_array_equal(a.batch(step)[key],
                                          np.concatenate([h[key] for h in two_hosts]))


def test_unequal_shards_wrap_independently_and_drop_nothing():
    # Shards of 7 and 6 examples, 3 per step: an epoch is ceil(7 / 3) = 3 steps; each shard's
    # stream shows every example once per pass over it, the shorter one wrapping sooner.
    shards = [labelled(7), labelled(6, offset=100)]
    a = paired(shards, [0, 1], batch=3)
    assert a.steps_per_epoch == 3
    assert paired(shards, [0, 1], batch=3, longest_shard=10).steps_per_epoch == 4
    streams = [[], []]
    for step in range(14):  # 42 positions per shard
        labels = a.batch(step)["label"]
        streams[0] += labels[:3].tolist()
        streams[1] += labels[3:].tolist()
    for stream, n, offset in ((streams[0], 7, 0), (streams[1], 6, 100)):
        passes = [stream[i : i + n] for i in range(0, 42, n)]
        assert all(sorted(p) == list(range(offset, offset + n)) for p in passes)
        assert len({tuple(p) for p in passes}) > 1  # reshuffled every pass


def test_one_epoch_rule_for_every_kind_of_data():
    # A paired shard is stream 0; unpaired domains are streams 0 (x) and 1 (y), read with the
    # same ExampleStream.
    one = paired([labelled(5)], [3], seed=7, batch=2)
    two = unpaired([id_images(range(5))], [id_images(range(10, 15))], [3], seed=7)
    for step in (0, 1, 2, 9):
        want = loaders.ExampleStream(5, seed=7, shard_id=3, stream=0).indices(step, 2)
        np.testing.assert_array_equal(one.batch(step)["label"], want)
        assert ids(two.batch(step)["x"], "symmetric") == want.tolist()
        want_y = loaders.ExampleStream(5, seed=7, shard_id=3, stream=1).indices(step, 2)
        assert ids(two.batch(step)["y"], "symmetric") == (10 + want_y).tolist()
    assert one.steps_per_epoch == two.steps_per_epoch == loaders.steps_per_epoch(5, 2) == 3
    with pytest.raises(ValueError, match="shard 0 stream 0 is empty"):
        paired([labelled(0)], [0])
    with pytest.raises(ValueError, match="an epoch needs a non-empty shard"):
        loaders.steps_per_epoch(0, 2)


def test_unpaired_batches_are_pure_functions_of_seed_shard_and_step():
    x_shards = [id_images(range(0, 5)), id_images(range(10, 14))]
    y_shards = [id_images(range(100, 103)), id_images(range(110, 113))]
    a, b = unpaired(x_shards, y_shards, [0, 1]), unpaired(x_shards, y_shards, [0, 1])
    for step in (0, 7, 3, 7, 100):  # random access by step, as a resumed run does
        for domain in ("x", "y"):
            np.testing.assert_array_equal(a.batch(step)[domain], b.batch(step)[domain])
    first = a.batch(0)
    assert set(first) == {"x", "y"}  # no labels for two domains
    assert first["x"].shape == first["y"].shape == (4, 4, 4, 3)
    assert first["x"].dtype == np.float32
    assert ids(a.batch(0)["x"], "symmetric") != ids(a.batch(1)["x"], "symmetric")
    seeds = [ids(unpaired(x_shards, y_shards, [0, 1], seed=s).batch(0)["x"], "symmetric")
             for s in (0, 1)]
    assert seeds[0] != seeds[1]
    # One process reading both shards = two processes' local batches concatenated.
    for domain in ("x", "y"):
        two_hosts = np.concatenate([unpaired(x_shards[:1], y_shards[:1], [0]).batch(5)[domain],
                                    unpaired(x_shards[1:], y_shards[1:], [1]).batch(5)[domain]])
        np.testing.assert_array_equal(a.batch(5)[domain], two_hosts)


def test_each_domain_cycles_through_its_own_epochs():
    x_shards = [id_images(range(0, 5)), id_images(range(10, 14))]
    y_shards = [id_images(range(100, 103)), id_images(range(110, 113))]
    loader = unpaired(x_shards, y_shards, [0, 1])
    assert loader.steps_per_epoch == 3  # ceil(longest stream 5 / 2)
    assert unpaired(x_shards, y_shards, [0, 1], batch=1).steps_per_epoch == 5
    assert unpaired(x_shards, y_shards, [0, 1], longest_shard=9).steps_per_epoch == 5
    x_stream, y_stream = [], []
    for step in range(15):  # 30 positions per shard
        batch = loader.batch(step)
        x_stream += ids(batch["x"], "symmetric")[:2]  # shard 0's part
        y_stream += ids(batch["y"], "symmetric")[:2]
    x_epochs = [x_stream[i : i + 5] for i in range(0, 30, 5)]
    y_epochs = [y_stream[i : i + 3] for i in range(0, 30, 3)]
    assert all(sorted(e) == list(range(5)) for e in x_epochs)  # each x once per x-epoch
    assert all(sorted(e) == [100, 101, 102] for e in y_epochs)  # each y once per y-epoch
    assert len({tuple(e) for e in x_epochs}) > 1 and len({tuple(e) for e in y_epochs}) > 1
    # The domains' shuffles are independent: equal-sized domains are not in the same order.
    twin = unpaired([id_images(range(8))], [id_images(range(8))], [0], batch=8).batch(0)
    assert ids(twin["x"], "symmetric") != ids(twin["y"], "symmetric")


def test_a_batch_larger_than_a_stream_straddles_epochs():
    loader = unpaired([id_images(range(5))], [id_images(range(7))], [0], batch=7)
    stream = ids(loader.batch(0)["x"], "symmetric") + ids(loader.batch(1)["x"], "symmetric")
    epochs = [stream[i : i + 5] for i in range(0, 14, 5)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(5))
    assert epochs[0] != epochs[1]  # batch 0 already reaches into the next permutation
    assert len(set(epochs[2])) == 4
    with pytest.raises(ValueError, match="shard 0 stream 1 is empty"):
        unpaired([id_images(range(3))], [id_images([])], [0])
    with pytest.raises(ValueError, match="2 x shards for 1 shard ids"):
        unpaired([id_images(range(3))] * 2, [id_images(range(3))], [0])


# --- streaming -------------------------------------------------------------------------------


def test_iterate_equals_batch_by_step_and_resumes_exactly():
    shards = [labelled(9), labelled(6, offset=50)]
    loader = paired(shards, [0, 1], batch=4, threads=3)
    by_step = [loader.batch(t) for t in range(8)]
    streamed = list(loader.iterate(0, 8))
    resumed = list(paired(shards, [0, 1], batch=4, threads=1).iterate(3, 8))
    assert len(streamed) == 8 and len(resumed) == 5
    for got, want in zip(streamed[3:] + resumed, by_step[3:] * 2, strict=True):
        assert set(got) == {"image", "label"}
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])
    assert [b["label"].tolist() for b in streamed[:3]] == [
        b["label"].tolist() for b in by_step[:3]]
    assert loader.bad_records.report() == {"records_read": 8 * 8, "bad_records": 0,
                                           "first_bad_records": []}


# --- bad records -----------------------------------------------------------------------------


class Flaky(ArraySource):
    """An in-memory source whose records `bad` raise when read, like unreadable files."""

    def __init__(self, n, bad):
        super().__init__(id_images(range(n), size=2, channels=1), np.arange(n), name="flaky")
        self.bad = set(bad)

    def __getitem__(self, i):
        if i in self.bad:
            raise OSError(f"cannot read {i}\nsecond line")
        return super().__getitem__(i)


def test_a_bad_record_is_replaced_by_the_next_readable_one():
    source = Flaky(6, bad={1, 2, 5})
    example, bad = loaders.read_or_replace(source, 1, AS_STORED_GREY)
    assert example["label"] == 3
    assert bad == [("record 1 of flaky", "OSError: cannot read 1"),
                   ("record 2 of flaky", "OSError: cannot read 2")]
    example, bad = loaders.read_or_replace(source, 5, AS_STORED_GREY)  # wraps to record 0
    assert example["label"] == 0 and [w for w, _ in bad] == ["record 5 of flaky"]
    batch, bad = loaders.read_batch(source, [0, 1, 5, 4], AS_STORED_GREY)
    assert batch["label"].tolist() == [0, 3, 0, 4] and len(bad) == 3
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], [0, 3, 0, 4])
    with pytest.raises(loaders.TooManyBadRecords,
                       match=r"3 records in a row are unreadable, starting at record 0 of "
                             r"flaky \(OSError: cannot read 0\)"):
        loaders.read_or_replace(Flaky(3, bad={0, 1, 2}), 0, AS_STORED_GREY)


def test_training_batches_replace_and_count_bad_records():
    source = Flaky(10, bad={4})
    loader = paired([source], [0], batch=5, max_bad_fraction=0.5)
    stream = loaders.ExampleStream(10, seed=0, shard_id=0)
    steps = 6
    for t, batch in enumerate(loader.iterate(0, steps)):
        want = [5 if i == 4 else i for i in stream.indices(t, 5)]
        assert batch["label"].tolist() == want
        assert ids(batch["image"]) == want
    assert loader.bad_records.report() == {"records_read": 33, "bad_records": 3,
                                           "first_bad_records": ["record 4 of flaky"]}
    # More than max_bad_fraction of the records read: the run stops, naming the setting.
    strict = paired([Flaky(10, bad={4})], [0], batch=5, max_bad_fraction=0.01)
    with pytest.raises(loaders.TooManyBadRecords,
                       match=r"training data: 1 of the 11 records read are bad, more than "
                             r"data.max_bad_fraction=0.01; the first: record 4 of flaky\."):
        list(strict.iterate(0, steps))


def test_bad_records_waits_for_enough_reads_and_names_only_the_first():
    counter = loaders.BadRecords(0.1, dataset_size=1000, what="eval")
    assert counter.min_read == 256
    counter.add(4, [("a", "x")])  # 1 in 5 > 10 %, but not judged yet: too few read
    counter.add(190, [(f"f{i}", "y") for i in range(5)] + [("a", "x")])
    assert counter.report() == {"records_read": 201, "bad_records": 7,
                                "first_bad_records": ["a", "f0", "f1", "f2", "f3"]}
    counter.add(55, [])  # 7 of 256 ≤ 10 %
    with pytest.raises(loaders.TooManyBadRecords, match=r"eval: 33 of the 283 records read"):
        counter.add(1, [("b", "z")] * 26)  # 33 > 28.3
    # Every bad record is a record read: the share never exceeds 1, so 1.0 never stops.
    lenient = loaders.BadRecords(1.0, dataset_size=4)
    lenient.add(1, [("c", "w")] * 31)
    assert lenient.report()["records_read"] == 32 and lenient.bad == 31


# --- evaluation ------------------------------------------------------------------------------


def to_unit(batch):
    return {**batch, "image": pipeline.to_range(batch["image"], "unit")}


def test_eval_batches_pad_and_mask():
    shards = [ArraySource(np.full((5, 2, 2, 1), 255, np.uint8), np.arange(5))]
    batches = list(loaders.eval_batches(shards, batch_per_shard=2, num_steps=3,
                                        reading=AS_STORED_GREY, preprocess=to_unit))
    masks = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(masks, [1, 1, 1, 1, 1, 0])
    assert batches[-1]["image"][1].max() == 0.0  # padding
    assert batches[0]["image"].dtype == np.float32 and batches[0]["image"].max() == 1.0
    assert sum(float((b["image"].sum((1, 2, 3)) * b["mask"]).sum()) for b in batches) == 20.0
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]),
                                  [0, 1, 2, 3, 4, 0])


def test_eval_batches_read_every_example_of_each_shard_once_in_order():
    shards = [labelled(5), labelled(2, offset=10), Flaky(4, bad={1})]
    batches = list(loaders.eval_batches(shards, batch_per_shard=2, num_steps=3,
                                        reading=AS_STORED_GREY, preprocess=to_unit,
                                        max_bad_fraction=0.5))
    assert [b["image"].shape for b in batches] == [(6, 2, 2, 1)] * 3
    labels = np.stack([b["label"] for b in batches])  # [step, shard × 2]
    masks = np.stack([b["mask"] for b in batches])
    # Shard parts in shard order; the bad record 1 of the third shard is replaced by 2.
    np.testing.assert_array_equal(labels, [[0, 1, 10, 11, 0, 2],
                                           [2, 3, 0, 0, 2, 3],
                                           [4, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(masks, [[1, 1, 1, 1, 1, 1],
                                          [1, 1, 0, 0, 1, 1],
                                          [1, 0, 0, 0, 0, 0]])
    capped = list(loaders.eval_batches(shards[:2], batch_per_shard=2, num_steps=1,
                                       reading=AS_STORED_GREY, preprocess=to_unit,
                                       max_examples_per_shard=1))
    np.testing.assert_array_equal(capped[0]["mask"], [1, 0, 1, 0])
    np.testing.assert_array_equal(capped[0]["label"], [0, 0, 10, 0])


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
    assert out.dtype == np.uint8 and out.shape == (64, 8, 8, 3)
    flipped, offsets = 0, set()
    for crop in out:
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
    assert all(c[0, 1, 0] > c[0, 0, 0] for c in no_flip)
    same = loaders.augment(images[:2], np.random.default_rng(0), load_size=12, crop_size=12,
                           flip=False)
    np.testing.assert_array_equal(same, images[:2])
    again = loaders.augment(images, np.random.default_rng(0), load_size=12, crop_size=8,
                            flip=True)
    np.testing.assert_array_equal(again, out)  # a function of the generator's draws


def test_augment_resizes_images_of_another_size():
    images = np.repeat(gradient_image(12)[None], 2, axis=0)
    out = loaders.augment(images, np.random.default_rng(0), load_size=20, crop_size=16,
                          flip=True)
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    flat = np.full((1, 6, 6, 1), 77, np.uint8)  # a resize keeps a constant image constant
    np.testing.assert_array_equal(loaders.augment(flat, np.random.default_rng(0), load_size=9,
                                                  crop_size=7, flip=True), 77)
    with pytest.raises(ValueError, match="exceeds load_size"):
        loaders.augment(images, np.random.default_rng(0), load_size=8, crop_size=12, flip=True)


def test_training_augmentation_depends_on_seed_shard_stream_and_step_only():
    images = np.repeat(gradient_image(12)[None], 3, axis=0)

    def crops(shard_ids, seed=0):
        loader = TrainBatches(
            domains={"x": [ArraySource(images)] * len(shard_ids),
                     "y": [ArraySource(images)] * len(shard_ids)},
            shard_ids=shard_ids, batch_per_shard=3, seed=seed,
            reading=Reading(size=12, channels=3, resize="squash"), input_range="unit",
            augment=lambda im, rng: loaders.augment(im, rng, load_size=12, crop_size=8,
                                                    flip=True))
        return loader

    both = crops([0, 1])
    for step in (0, 4):
        batch = both.batch(step)
        assert batch["x"].shape == (6, 8, 8, 3)
        np.testing.assert_array_equal(batch["x"], both.batch(step)["x"])  # deterministic
        np.testing.assert_array_equal(  # shard composition holds through augmentation
            batch["x"], np.concatenate([crops([0]).batch(step)["x"],
                                        crops([1]).batch(step)["x"]]))
        assert not np.array_equal(batch["x"], batch["y"])  # streams draw their own crops
        assert not np.array_equal(batch["x"][:3], batch["x"][3:])  # and so do shards
    assert not np.array_equal(both.batch(0)["x"], both.batch(1)["x"])
    assert not np.array_equal(both.batch(0)["x"], crops([0, 1], seed=1).batch(0)["x"])
