"""Image folders as record sources: classes from subfolders, train/test folders or a CRC split,
every common file format and mode converted to the run's shape (fit_image), bad files
replaced and counted, clear errors for a wrong path, and streaming through grain."""

import os
import pickle
import re
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxgen.data import generate, loaders, records
from jaxgen.data.datasets import ImageData, ImageDataConfig
from jaxgen.data.loaders import Reading, TrainBatches
from jaxgen.validation import ConfigError
from tests.experiments.helpers import SMALL, run_main


def folder_data(path, *, input_range="unit", seed=0, **config):
    return ImageData(ImageDataConfig(source="folder", path=str(path), **config),
                     input_range=input_range, seed=seed)


def solid(size, colour, mode="RGB"):
    """A PIL image of one colour; `size` is (width, height)."""
    return Image.new(mode, size, colour)


def relpaths(listing):
    return [f.decode() for f in listing.files]


# --- listing a folder ------------------------------------------------------------------------


def test_class_subfolders_give_sorted_class_names_and_labels(tmp_path):
    root = tmp_path / "data"
    generate.write_image_folder(str(root), num_images=9, size=4, classes=["zebra", "ant", "mole"],
                                fmt="png")
    (root / "ant" / "more" / "deep").mkdir(parents=True)
    solid((4, 4), (1, 2, 3)).save(root / "ant" / "more" / "deep" / "nested.PNG")
    solid((4, 4), (1, 2, 3)).save(root / "mole" / ".hidden.png")  # hidden: skipped
    (root / "mole" / "notes.txt").write_text("not an image")  # no image extension: skipped
    listing = records.scan_folder(str(root))
    assert listing.class_names == ("ant", "mole", "zebra")
    assert dict(zip(relpaths(listing), listing.labels.tolist(), strict=True)) == {
        "ant/img_0000001.png": 0, "ant/img_0000004.png": 0, "ant/img_0000007.png": 0,
        "ant/more/deep/nested.PNG": 0,
        "mole/img_0000002.png": 1, "mole/img_0000005.png": 1, "mole/img_0000008.png": 1,
        "zebra/img_0000000.png": 2, "zebra/img_0000003.png": 2, "zebra/img_0000006.png": 2}
    # Through ImageData: the classes of the data, and labels that follow the files.
    data = folder_data(root, test_fraction=0.3)
    assert data.class_names == ("ant", "mole", "zebra") and data.num_classes == 3
    assert data.describe()["class_names"] == ["ant", "mole", "zebra"]
    train = data.sources("train")["image"][0]
    images = data.images("train")
    folders = [os.path.relpath(train.describe(i), root).split(os.sep)[0]
               for i in range(len(train))]
    want = [("ant", "mole", "zebra").index(f) for f in folders]
    assert images["label"].tolist() == want
    assert data.num_examples("train") + data.num_examples("test") == 10


def test_images_in_the_root_have_no_labels(tmp_path):
    generate.write_image_folder(str(tmp_path), num_images=6, size=4, fmt="png")
    generate.write_image_folder(str(tmp_path / "sub"), num_images=1, size=4, fmt="png", seed=1)
    listing = records.scan_folder(str(tmp_path))
    assert listing.labels is None and listing.class_names == ()
    assert relpaths(listing)[-1] == os.path.join("sub", "img_0000000.png")
    data = folder_data(tmp_path, test_fraction=0.2)
    assert data.num_classes == 0 and data.class_names == ()
    assert set(data.images("train")) == {"image"}
    assert set(data.train_loader(2, 1).batch(0)) == {"image"}


def test_train_and_test_folders_are_used_when_both_exist(tmp_path):
    generate.write_image_folder(str(tmp_path / "train"), num_images=6, size=4,
                                classes=["cat", "dog", "owl"], fmt="png")
    generate.write_image_folder(str(tmp_path / "test"), num_images=2, size=4, classes=["dog"],
                                fmt="png", seed=1)
    data = folder_data(tmp_path, test_fraction=0.5)  # not used: the folders are the split
    assert data.describe()["num_examples"] == {"train": 6, "test": 2}
    assert data.class_names == ("cat", "dog", "owl")
    assert data.images("test")["label"].tolist() == [1, 1]  # train's id of "dog"
    np.testing.assert_array_equal(data.images("test")["image"][1],
                                  generate.blob_image(1, size=4, seed=1))
    assert data.images("train")["label"].tolist() == [0, 0, 1, 1, 2, 2]
    generate.write_image_folder(str(tmp_path / "test"), num_images=1, size=4, classes=["bird"],
                                fmt="png")
    with pytest.raises(ConfigError, match=r"has class folders \['bird'\] that the training "
                                          "split does not have"):
        folder_data(tmp_path).sources("test")


def test_a_train_folder_alone_is_its_own_split_not_a_class(tmp_path):
    generate.write_image_folder(str(tmp_path / "train"), num_images=40, size=4,
                                classes=["cat", "dog"], fmt="png")
    data = folder_data(tmp_path, test_fraction=0.25)
    assert data.class_names == ("cat", "dog")  # not ("train",)
    counts = data.describe()["num_examples"]
    assert counts["train"] + counts["test"] == 40 and counts["test"] > 0


def test_a_folder_without_train_and_test_is_split_by_crc_of_the_path(tmp_path):
    generate.write_image_folder(str(tmp_path), num_images=40, size=4, fmt="png")
    split = records.split_listing(records.scan_folder(str(tmp_path)), 0.25)
    names = sorted(os.listdir(tmp_path))
    want_test = [n for n in names if zlib.crc32(n.encode()) < 2**30]
    assert relpaths(split["test"]) == want_test
    assert relpaths(split["train"]) == [n for n in names if n not in want_test]
    assert 0 < len(want_test) < 40
    again = records.split_listing(records.scan_folder(str(tmp_path)), 0.25)
    assert {s: relpaths(again[s]) for s in again} == {s: relpaths(split[s]) for s in split}
    data = folder_data(tmp_path, test_fraction=0.25)
    assert data.describe()["num_examples"] == {"train": 40 - len(want_test),
                                               "test": len(want_test)}
    # Files added later do not move the others between splits.
    for i in range(10):
        solid((4, 4), (i, i, i)).save(tmp_path / f"new_{i}.png")
    grown = records.split_listing(records.scan_folder(str(tmp_path)), 0.25)
    for s in ("train", "test"):
        assert [n for n in relpaths(grown[s]) if not n.startswith("new_")] == relpaths(split[s])
    assert len(grown["train"].files) + len(grown["test"].files) == 50
    # A split with no file is an error naming the setting.
    (tmp_path / "one").mkdir()
    name = next(f"{i}.png" for i in range(100) if zlib.crc32(f"{i}.png".encode()) > 2**31)
    solid((4, 4), (0, 0, 0)).save(tmp_path / "one" / name)
    with pytest.raises(ConfigError, match=r"data.test_fraction=0.25 leaves no test image among "
                                          r"the 1 files"):
        folder_data(tmp_path / "one", test_fraction=0.25).sources("test")


# --- formats, modes and sizes ----------------------------------------------------------------

# (file name, how it is written, RGB it reads as, tolerance)
MIXED = [
    ("a_rgba.png", lambda p: solid((16, 16), (200, 100, 50, 128), "RGBA").save(p),
     (200, 100, 50), 0),
    ("b_grey.png", lambda p: solid((16, 16), 77, "L").save(p), (77, 77, 77), 0),
    ("c_palette.png", lambda p: palette((10, 220, 30)).save(p), (10, 220, 30), 0),
    ("d_grey16.png", lambda p: Image.fromarray(np.full((16, 16), 257 * 40, np.uint16)).save(p),
     (40, 40, 40), 0),
    ("e_lossless.webp", lambda p: solid((16, 16), (5, 6, 7)).save(p, lossless=True),
     (5, 6, 7), 0),
    ("f_small.bmp", lambda p: solid((10, 10), (120, 130, 140)).save(p), (120, 130, 140), 0),
    ("g_wide.jpg", lambda p: solid((24, 16), (90, 90, 200)).save(p, quality=95),
     (90, 90, 200), 2),
    ("h_big.png", lambda p: solid((40, 30), (255, 0, 0)).save(p), (255, 0, 0), 0),
    ("i_lossy.webp", lambda p: solid((20, 20), (60, 180, 90)).save(p, quality=90),
     (60, 180, 90), 3),
]


def palette(colour):
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, *colour] + [0] * (254 * 3))
    return image


def luminance(rgb):
    return int(np.round(np.dot(rgb, [0.299, 0.587, 0.114])))


def test_every_format_and_mode_is_read_at_the_configured_shape(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for name, write, _, _ in MIXED:
        write(tmp_path / "train" / name)
    solid((16, 16), 0, "L").save(tmp_path / "test" / "one.png")
    for channels in (3, 1):
        data = folder_data(tmp_path, image_size=16, channels=channels)
        assert data.image_shape == (16, 16, channels)
        images = data.images("train")["image"]
        assert images.dtype == np.uint8 and images.shape == (len(MIXED), 16, 16, channels)
        for image, (name, _, rgb, tol) in zip(images, MIXED, strict=True):
            want = rgb if channels == 3 else (luminance(rgb),)
            assert np.abs(image.astype(int) - want).max() <= tol, (name, image[8, 8], want)
        batch = data.train_loader(len(MIXED), 1).batch(0)["image"]
        assert batch.shape == (len(MIXED), 16, 16, channels) and batch.dtype == np.float32
        assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_stored_shape_and_channels_come_from_the_data(tmp_path):
    generate.write_image_folder(str(tmp_path / "grey" / "train"), num_images=3, size=6,
                                channels=1, fmt="png")
    generate.write_image_folder(str(tmp_path / "grey" / "test"), num_images=1, size=6,
                                channels=1, fmt="png")
    grey = folder_data(tmp_path / "grey")
    assert grey.image_shape == (6, 6, 1)
    np.testing.assert_array_equal(grey.images("train")["image"][2],
                                  generate.blob_image(2, size=6, channels=1))
    assert folder_data(tmp_path / "grey", channels=3).image_shape == (6, 6, 3)
    for split in ("train", "test"):
        (tmp_path / "wide" / split).mkdir(parents=True)
        solid((12, 8), (1, 2, 3)).save(tmp_path / "wide" / split / "wide.png")  # 8 high
    with pytest.raises(ConfigError, match=r"are 8×12; set --config\.data\.image_size=S"):
        folder_data(tmp_path / "wide").image_shape  # noqa: B018
    assert folder_data(tmp_path / "wide", image_size=8).image_shape == (8, 8, 3)


def arange_image(h, w, c=3):
    return (np.arange(h * w * c) % 251).astype(np.uint8).reshape(h, w, c)


def test_fit_image_crops_pads_and_squashes_exactly():
    fit = records.fit_image
    # crop: the shorter side already fits, so no resampling: the centre cut of the array.
    wide, tall = arange_image(8, 13), arange_image(14, 8)
    np.testing.assert_array_equal(fit(wide, size=8, channels=3, resize="crop"), wide[:, 2:10])
    np.testing.assert_array_equal(fit(tall, size=8, channels=3, resize="crop"), tall[3:11])
    # pad: zeros around the image, the odd pixel after it.
    small = arange_image(5, 7, 1) + 1
    padded = fit(small, size=10, channels=1, resize="pad")
    want = np.zeros((10, 10, 1), np.uint8)
    want[2:7, 1:8] = small
    np.testing.assert_array_equal(padded, want)
    # pad a larger image: scaled down (aspect kept) to fit, then padded.
    flat = np.full((20, 10, 3), 100, np.uint8)
    down = fit(flat, size=10, channels=3, resize="pad")
    want = np.zeros((10, 10, 3), np.uint8)
    want[:, 2:7] = 100
    np.testing.assert_array_equal(down, want)
    # crop a larger image: the shorter side scaled to the size, then the centre cut.
    big = np.zeros((16, 32, 3), np.uint8)
    big[:, 8:24] = 200  # the centre square of a 2:1 image
    cut = fit(big, size=8, channels=3, resize="crop")
    assert cut.shape == (8, 8, 3) and (cut[:, 2:6] == 200).all()  # beyond the kernel's reach
    np.testing.assert_array_equal(cut, cut[:, ::-1])  # the cut is centred
    # squash: the whole image to the square, as PIL resizes it.
    squashed = fit(wide, size=6, channels=3, resize="squash")
    np.testing.assert_array_equal(
        squashed, np.asarray(Image.fromarray(wide).resize((6, 6), Image.Resampling.BICUBIC)))
    np.testing.assert_array_equal(fit(flat, size=4, channels=3, resize="squash"), 100)
    # size 0 keeps the stored size; the same size is returned unchanged.
    np.testing.assert_array_equal(fit(wide, size=0, channels=3, resize="crop"), wide)
    np.testing.assert_array_equal(fit(tall[:8], size=8, channels=3, resize="pad"), tall[:8])
    with pytest.raises(ValueError, match="resize='stretch' must be one of"):
        fit(wide, size=4, channels=3, resize="stretch")


def test_fit_image_converts_channels_and_bit_depth():
    fit = records.fit_image
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]], np.uint8)
    np.testing.assert_array_equal(fit(colours, size=0, channels=1, resize="crop")[0, :, 0],
                                  [luminance(c) for c in colours[0]])
    grey = np.array([[[0], [77], [255]]], np.uint8)
    np.testing.assert_array_equal(fit(grey, size=0, channels=3, resize="crop"),
                                  np.repeat(grey, 3, axis=-1))
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], np.uint8)
    np.testing.assert_array_equal(fit(rgba, size=0, channels=3, resize="crop"),
                                  rgba[..., :3])  # alpha dropped, colour kept
    sixteen = np.array([[[0], [257], [257 * 40 + 128], [65535]]], np.uint16)
    np.testing.assert_array_equal(fit(sixteen, size=0, channels=1, resize="crop")[0, :, 0],
                                  [0, 1, 40, 255])
    with pytest.raises(ValueError, match="expected a uint8 or uint16 image"):
        fit(np.zeros((4, 4, 3), np.float32), size=0, channels=3, resize="crop")


# --- wrong paths -----------------------------------------------------------------------------


def test_wrong_paths_are_one_clear_error_each(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts" / "deeper").mkdir(parents=True)
    (tmp_path / "texts" / "deeper" / "readme.txt").write_text("no images here")
    (tmp_path / "a_file.png").write_bytes(b"")
    cases = [
        (tmp_path / "missing", "does not exist"),
        (tmp_path / "a_file.png", "is a file, not a folder of images"),
        (tmp_path / "empty", r"holds no image files \(\.png, \.jpg"),
        (tmp_path / "texts", r"holds no image files \(\.png, \.jpg"),
    ]
    for path, what in cases:
        with pytest.raises(FileNotFoundError, match=f"data.path: {re.escape(str(path))} {what}"):
            folder_data(path).image_shape  # noqa: B018
    with pytest.raises(ConfigError, match="data.source='folder' needs data.path"):
        ImageDataConfig(source="folder")


# --- bad files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_bad_files(tmp_path_factory):
    """train/: 12 good 4×4 PNGs (blob k in img_000000k.png) and, sorted among them, a text
    file named .png, a truncated JPEG and an empty file (the last file, so its replacement
    wraps around to the first); test/: one good PNG."""
    root = tmp_path_factory.mktemp("bad_files")
    generate.write_image_folder(str(root / "train"), num_images=12, size=4, fmt="png")
    generate.write_image_folder(str(root / "test"), num_images=1, size=4, fmt="png")
    (root / "train" / "img_0000003b.png").write_text("this is not a PNG")
    jpeg = root / "train" / "img_0000007b.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])  # header whole
    (root / "train" / "zz_empty.png").write_bytes(b"")
    return root


def good_number(source, i):
    """The blob number of the record that replaces record `i` (the next readable one)."""
    n = len(source)
    while True:
        name = os.path.basename(source.describe(i))
        if re.fullmatch(r"img_\d{7}\.png", name):
            return int(name[4:11])
        i = (i + 1) % n


def test_bad_files_are_replaced_by_the_next_readable_one_and_counted(with_bad_files):
    data = folder_data(with_bad_files, image_size=4, max_bad_fraction=0.5, seed=3)
    (source,) = data.sources("train")["image"]
    assert len(source) == 15
    bad_paths = [source.describe(i) for i in (4, 9, 14)]
    assert [os.path.basename(p) for p in bad_paths] == [
        "img_0000003b.png", "img_0000007b.jpg", "zz_empty.png"]
    loader = data.train_loader(5, 1)
    stream = loaders.ExampleStream(15, seed=3, shard_id=0)
    met = []
    for t, batch in enumerate(loader.iterate(0, 6)):
        indices = stream.indices(t, 5)
        want = np.stack([generate.blob_image(good_number(source, i), size=4) for i in indices])
        np.testing.assert_allclose(batch["image"], want / 255.0, atol=1e-7)
        met += [source.describe(i) for i in indices if source.describe(i) in bad_paths]
    assert len(met) == 6  # each bad file twice in two passes over 15 files
    report = loader.bad_records.report()
    assert report == {"records_read": 36, "bad_records": 6,
                      "first_bad_records": list(dict.fromkeys(met))}
    # Evaluation reads every record in order, a bad one replaced by the next.
    batches, steps = data.eval_batches("image", global_batch=5, max_examples=0,
                                       num_local_devices=1, what="eval", split="train")
    images = np.concatenate([b["image"] for b in batches])
    assert steps == 3 and images.shape == (15, 4, 4, 3)
    want = [generate.blob_image(good_number(source, i), size=4) for i in range(15)]
    np.testing.assert_allclose(images, np.stack(want) / 255.0, atol=1e-7)
    assert [good_number(source, i) for i in (4, 9, 14)] == [4, 8, 0]


def test_too_many_bad_files_stop_the_run_naming_them_and_the_setting(with_bad_files):
    loader = folder_data(with_bad_files, image_size=4, max_bad_fraction=0.1).train_loader(5, 1)
    with pytest.raises(loaders.TooManyBadRecords) as raised:
        list(loader.iterate(0, 6))
    message = str(raised.value)
    assert re.match(r"training data: [1-9] of the 1[5-9] records read are bad, more than "
                    r"data\.max_bad_fraction=0\.1; the first: ", message)
    assert "Fix or remove those files, or raise data.max_bad_fraction." in message
    named = re.search(r"the first: (.*)\. Fix", message).group(1).split(", ")
    assert named and all(os.path.basename(p) in ("img_0000003b.png", "img_0000007b.jpg",
                                                 "zz_empty.png") for p in named)
    evaluation = folder_data(with_bad_files, image_size=4, max_bad_fraction=0.0)
    with pytest.raises(loaders.TooManyBadRecords, match="evaluation data: 3 of the 18"):
        list(evaluation.eval_batches("image", global_batch=5, max_examples=0,
                                     num_local_devices=1, what="eval", split="train")[0])


def test_a_short_read_is_checked_at_its_end(with_bad_files):
    """Fewer records read than the early-check minimum: the share is checked when the read
    ends, so a short run on a broken folder still stops."""
    data = folder_data(with_bad_files, image_size=4, max_bad_fraction=0.01)
    loader = data.train_loader(5, 1)
    assert loader.bad_records.min_read == 15
    with pytest.raises(loaders.TooManyBadRecords, match="records read are bad"):
        list(loader.iterate(0, 2))  # 10 examples, the first bad file among them (seed 0)


def test_too_many_bad_files_are_a_one_line_error_from_the_cli(tmp_path):
    generate.write_image_folder(str(tmp_path / "data" / "train"), num_images=4, size=8,
                                channels=1, fmt="png")
    generate.write_image_folder(str(tmp_path / "data" / "test"), num_images=2, size=8,
                                channels=1, fmt="png")
    for i in range(4):
        (tmp_path / "data" / "train" / f"img_{i}b.png").write_text("not a PNG")
    result = run_main("vae_mlp", str(tmp_path / "run"), {
        **SMALL, "data.source": "folder", "data.path": str(tmp_path / "data"),
        "train.num_steps": 8, "train.batch_size": 8, "eval.max_examples": 2})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert re.fullmatch(r"error: training data: \d+ of the \d+ records read are bad, more than "
                        r"data\.max_bad_fraction=0\.01; the first: .*img_\db\.png.*\. Fix or "
                        r"remove those files, or raise data\.max_bad_fraction\.", error), error


def test_grain_workers_give_the_batches_of_each_step(with_bad_files):
    """Worker processes (grain mp_prefetch, spawned) read the same batches as batch(step) and
    report their bad records to this process."""
    threads = folder_data(with_bad_files, image_size=4, max_bad_fraction=0.5).train_loader(5, 1)
    workers = folder_data(with_bad_files, image_size=4, max_bad_fraction=0.5,
                          workers=2).train_loader(5, 1)
    assert workers.workers == 2
    by_step = [threads.batch(t) for t in range(2, 7)]
    streamed = list(workers.iterate(2, 7))
    assert len(streamed) == 5
    for got, want in zip(streamed, by_step, strict=True):
        assert set(got) == {"image"}
        np.testing.assert_array_equal(got["image"], want["image"])
    list(threads.iterate(2, 7))
    assert workers.bad_records.report() == threads.bad_records.report()
    assert workers.bad_records.bad > 0


# --- streaming and memory --------------------------------------------------------------------


def test_shards_compose_and_streaming_resumes_exactly(tmp_path):
    generate.write_image_folder(str(tmp_path / "train"), num_images=11, size=6,
                                classes=["a", "b"], fmt="png")
    generate.write_image_folder(str(tmp_path / "test"), num_images=2, size=6,
                                classes=["a", "b"], fmt="png")
    data = folder_data(tmp_path, image_size=4, num_shards=2, seed=5, threads=3)
    shards = data.sources("train")["image"]
    assert [len(s) for s in shards] == [5, 6]
    loader = data.train_loader(4, 1)
    assert loader.batch_per_shard == 2 and loader.steps_per_epoch == 3
    reading = data.reading("train")
    alone = [TrainBatches(domains={"image": [s]}, shard_ids=[i], batch_per_shard=2, seed=5,
                          reading=reading, input_range="unit") for i, s in enumerate(shards)]
    by_step = [loader.batch(t) for t in range(6)]
    for t, batch in enumerate(by_step):
        parts = [a.batch(t) for a in alone]
        for key in ("image", "label"):
            np.testing.assert_array_equal(batch[key], np.concatenate([p[key] for p in parts]))
    streamed = list(loader.iterate(0, 6))
    resumed = list(data.train_loader(4, 1).iterate(3, 6))
    for got, want in zip(streamed + resumed, by_step + by_step[3:], strict=True):
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])
    assert not np.array_equal(by_step[0]["image"], by_step[1]["image"])


def test_a_folder_source_holds_its_file_list_not_its_pixels(tmp_path):
    generate.write_image_folder(str(tmp_path), num_images=64, size=32, fmt="png")
    data = folder_data(tmp_path, test_fraction=0.1)
    shards = data.sources("train")["image"]
    decoded = data.num_examples("train") * 32 * 32 * 3
    before = len(pickle.dumps(shards))
    data.train_loader(8, 1).batch(0)
    data.images("train")
    after = len(pickle.dumps(shards))
    assert before == after < decoded / 40
    (whole,) = {s.source for s in shards}
    assert isinstance(whole, records.FolderSource) and whole.listing.files.dtype.kind == "S"
    assert data.sources("train") is data.sources("train")  # opened once


def test_reading_a_bad_file_is_a_bad_record_naming_it(with_bad_files):
    source = records.FolderSource(records.scan_folder(str(with_bad_files / "train")))
    for i in (4, 9, 14):
        with pytest.raises(records.BadRecord, match=re.escape(source.describe(i)) + ": "):
            records.read_example(source, i, size=4, channels=3, resize="crop")
    example, bad = loaders.read_or_replace(source, 14, Reading(size=4, channels=3))
    np.testing.assert_array_equal(example["image"], generate.blob_image(0, size=4))
    assert [w for w, _ in bad] == [source.describe(14)]
    with pytest.raises(ConfigError, match="none of the first 1 records can be read"):
        records.first_image(records.RecordRange(source, 4, 5))
