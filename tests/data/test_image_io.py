"""Image files: listing, decoding with resize/channel conversion, and the one PNG writer."""

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxgen.data import image_io


@pytest.mark.parametrize("channels", [3, 1])
def test_save_and_load_image_folder_round_trip(tmp_path, channels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 6, 5, channels), dtype=np.uint8)
    paths = image_io.output_paths(["b.jpg", "a.png", "c.jpeg"], str(tmp_path / "out"),
                                  overwrite=False)
    assert image_io.save_images(images / 255.0, paths) == paths
    assert [os.path.basename(p) for p in paths] == ["b.png", "a.png", "c.png"]
    loaded, names = image_io.load_image_folder(str(tmp_path / "out"), size=None,
                                               channels=channels)
    assert names == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(loaded, images[[1, 0, 2]])
    small, _ = image_io.load_image_folder(str(tmp_path / "out"), size=4, channels=3)
    assert small.shape == (3, 4, 4, 3)


def test_output_paths_never_overwrite_or_collide(tmp_path):
    out = tmp_path / "out"
    paths = image_io.output_paths(["a.jpg"], str(out), overwrite=False)
    image_io.save_images(np.zeros((1, 2, 2, 1)), paths)
    with pytest.raises(ValueError, match="is not empty"):
        image_io.output_paths(["a.jpg"], str(out), overwrite=False)
    assert image_io.output_paths(["a.jpg"], str(out), overwrite=True) == paths
    with pytest.raises(ValueError, match="would both be written to"):
        image_io.output_paths(["x.png", "x.jpg"], str(tmp_path / "new"), overwrite=False)


def test_write_png_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        image_io.write_png(str(tmp_path / "a.png"), np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        image_io.write_png(str(tmp_path / "a.png"), np.zeros((2, 2, 4), np.uint8))


# --- every mode and bit depth --------------------------------------------------------------


def png_bytes(width, height, bit_depth, colour_type, pixels=None):
    """A PNG file written by hand: any bit depth/colour type, or a header for any size."""

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    rows = b"" if pixels is None else b"".join(b"\x00" + r.tobytes() for r in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


SIXTEEN_BIT = np.array([0, 128, 129, 257, 1000, 32896, 65280, 65535], np.uint16)


def test_sixteen_bit_grayscale_scales_by_257_not_clipped(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(SIXTEEN_BIT[None]).save(path)  # Pillow mode "I;16"
    assert Image.open(path).mode == "I;16"
    want = np.round(SIXTEEN_BIT / 257).astype(np.uint8)  # [0, 0, 1, 1, 4, 128, 254, 255]
    np.testing.assert_array_equal(image_io.read_image(str(path), channels=1)[0, :, 0], want)
    np.testing.assert_array_equal(image_io.read_image(str(path))[0], np.stack([want] * 3, -1))
    # Mode "I" (older Pillow's 16-bit PNGs; here a TIFF) holding 16-bit values: the same.
    Image.fromarray(SIXTEEN_BIT[None].astype(np.int32), mode="I").save(tmp_path / "i.tif")
    np.testing.assert_array_equal(
        image_io.read_image(str(tmp_path / "i.tif"), channels=1)[0, :, 0], want)


def test_sixteen_bit_colour_is_within_one_level_of_v_over_257(tmp_path):
    values = SIXTEEN_BIT.reshape(1, -1, 1).repeat(3, axis=-1).astype(">u2")
    (tmp_path / "rgb16.png").write_bytes(png_bytes(8, 1, 16, 2, values))
    got = image_io.read_image(str(tmp_path / "rgb16.png")).astype(int)
    assert np.abs(got - np.round(values / 257)).max() <= 1
    assert got[0, -1].tolist() == [255] * 3 and got[0, 0].tolist() == [0] * 3


def test_low_bit_depths_palette_alpha_and_cmyk_convert(tmp_path):
    Image.fromarray(np.array([[False, True]])).save(tmp_path / "one_bit.png")
    assert image_io.read_image(str(tmp_path / "one_bit.png"), channels=1).ravel().tolist() == [
        0, 255]
    (tmp_path / "two_bit.png").write_bytes(png_bytes(4, 1, 2, 0, [np.array([0b00011011],
                                                                           np.uint8)]))
    assert image_io.read_image(str(tmp_path / "two_bit.png"), channels=1).ravel().tolist() == [
        0, 85, 170, 255]
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([0, 1])
    palette.save(tmp_path / "palette.png", transparency=1)
    assert image_io.read_image(str(tmp_path / "palette.png")).tolist() == [
        [[255, 0, 0], [0, 0, 255]]]
    la = np.array([[[10, 0], [200, 255]]], np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert image_io.read_image(str(tmp_path / "la.png"), channels=1).ravel().tolist() == [10, 200]
    rgba = np.array([[[10, 20, 30, 0], [200, 100, 50, 255]]], np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(image_io.read_image(str(tmp_path / "rgba.png")), rgba[..., :3])
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    red = image_io.read_image(str(tmp_path / "cmyk.jpg")).astype(int)
    assert np.abs(red - [255, 0, 0]).max() <= 2


def test_images_without_an_8_bit_meaning_are_refused(tmp_path):
    Image.fromarray(np.array([[0, 70_000]], np.int32), mode="I").save(tmp_path / "i32.tif")
    with pytest.raises(image_io.ImageFileError, match="i32.tif holds 32-bit integer values"):
        image_io.read_image(str(tmp_path / "i32.tif"))
    Image.fromarray(np.array([[0.5]], np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(image_io.ImageFileError, match="f.tif has Pillow mode 'F'"):
        image_io.read_image(str(tmp_path / "f.tif"))


# --- bad files are named ---------------------------------------------------------------------


def test_truncated_png_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(image_io.ImageFileError,
                       match=rf"cannot decode image {path}: the file is truncated or corrupt .*"
                             r"Re-export or re-download it"):
        image_io.read_image(str(path))


def test_non_image_with_png_extension_names_the_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(image_io.ImageFileError,
                       match=rf"cannot read image {path}: Pillow cannot identify it as an image"):
        image_io.load_image_folder(str(tmp_path), size=None)


def test_images_too_large_to_decode_are_refused_from_the_header(tmp_path, monkeypatch):
    # Headers only: decoding would need GBs. 100,000² trips Pillow's own bomb check, 9,000²
    # (81 M pixels, under Pillow's limit) ours.
    for side in (100_000, 9_000):
        path = tmp_path / f"huge_{side}.png"
        path.write_bytes(png_bytes(side, side, 1, 0))
        with pytest.raises(image_io.ImageFileError,
                           match=rf"image {path} is too large to decode safely .*MAX_IMAGE_PIX"):
            image_io.read_image(str(path))
    Image.new("L", (20, 20)).save(tmp_path / "small.png")
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 399)
    with pytest.raises(image_io.ImageFileError, match="400 pixels"):
        image_io.read_image(str(tmp_path / "small.png"))
    monkeypatch.setattr(image_io, "MAX_IMAGE_PIXELS", 400)
    assert image_io.read_image(str(tmp_path / "small.png")).shape == (20, 20, 3)


def test_convert_channels_of_decoded_arrays():
    rgba = np.array([[[10, 20, 30, 0], [200, 100, 50, 255]]], np.uint8)
    np.testing.assert_array_equal(image_io.convert_channels(rgba, 3), rgba[..., :3])
    assert image_io.convert_channels(rgba[..., :1], 3).shape == (1, 2, 3)
    gray16 = SIXTEEN_BIT.reshape(1, -1, 1)
    np.testing.assert_array_equal(image_io.convert_channels(gray16, 1)[..., 0],
                                  np.round(gray16[..., 0] / 257))
    with pytest.raises(ValueError, match=r"got float32 \(1, 2, 3\)"):
        image_io.convert_channels(np.zeros((1, 2, 3), np.float32), 3)
