"""Tests for stacking.io: every input is generated in tmp_path."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps

from stacking import files
from stacking import io as sio
from stacking.errors import ImageReadError, ImageWriteError, StackingError

MAKE, MODEL, DATETIME = "TestMake", "TestModel", "2024:05:06 07:08:09"
MAKE_TAG, MODEL_TAG, DATETIME_TAG, ORIENTATION_TAG = 271, 272, 306, 0x0112
ARTIST_TAG, COPYRIGHT_TAG, DESCRIPTION_TAG = 315, 33432, 270
EXIF_IFD, DATETIME_ORIGINAL = 0x8769, 0x9003


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_exif(orientation: int | None = None, extra: dict[int, str | bytes] | None = None) -> bytes:
    exif = Image.Exif()
    exif[MAKE_TAG], exif[MODEL_TAG], exif[DATETIME_TAG] = MAKE, MODEL, DATETIME
    if orientation is not None:
        exif[ORIENTATION_TAG] = orientation
    for tag, value in (extra or {}).items():
        exif[tag] = value
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = DATETIME  # lives in the EXIF sub-IFD
    return exif.tobytes()


def parse_exif(block: bytes | None) -> Image.Exif:
    assert block is not None
    assert block.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(block)
    return exif


def rgb8(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def rgb16(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (h, w, 3), dtype=np.uint16)


def smooth_rgb8(h: int = 48, w: int = 64) -> np.ndarray:
    """A gradient: JPEG reproduces it closely, so round trip errors stay small."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95, **options)
    return buf.getvalue()


def png_bytes(image: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **options)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# natural_key and collect_inputs


def test_natural_key_orders_numbers_by_value_and_ignores_case() -> None:
    names = ["frame_10.jpg", "Frame_2.jpg", "frame_1.JPG", "frame_100.jpg", "FRAME_3.jpg"]
    assert sorted(names, key=sio.natural_key) == [
        "frame_1.JPG",
        "Frame_2.jpg",
        "FRAME_3.jpg",
        "frame_10.jpg",
        "frame_100.jpg",
    ]


def test_natural_key_compares_folders_component_by_component() -> None:
    paths = [Path("stack10/a.jpg"), Path("stack2/b.jpg"), Path("stack2/a10.jpg"), "stack2/a9.jpg"]
    assert [str(p) for p in sorted(paths, key=sio.natural_key)] == [
        "stack2/a9.jpg",
        "stack2/a10.jpg",
        "stack2/b.jpg",
        "stack10/a.jpg",
    ]


def test_natural_key_is_total_for_mixed_names() -> None:
    names = ["10", "a", "a10", "10a", "", "_", "frame_01", "frame_1", "A", "1.5", "x-2"]
    once = sorted(names, key=sio.natural_key)
    assert sorted(reversed(names), key=sio.natural_key) == once  # no ties left to input order
    assert once.index("frame_01") < once.index("frame_1")  # ties broken by the text itself


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.text("ab_-.", max_size=4))
def test_natural_key_number_order_property(a: int, b: int, stem: str) -> None:
    if a < b:
        assert sio.natural_key(f"{stem}{a}.tif") < sio.natural_key(f"{stem}{b}.tif")


@given(st.lists(st.text("aB0123456789._", max_size=8), max_size=12))
def test_natural_key_never_mixes_types(names: list[str]) -> None:
    sorted(names, key=sio.natural_key)  # would raise TypeError on int vs str


def test_collect_inputs_scans_folders_and_files(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    (shots / "sub").mkdir(parents=True)
    for name in ["frame_10.jpg", "frame_2.JPG", "frame_1.nef", "notes.txt", ".hidden.jpg"]:
        (shots / name).write_bytes(b"")
    (shots / "sub" / "frame_0.jpg").write_bytes(b"")  # not recursive
    extra = write(tmp_path / "extra.TIFF", b"")
    readme = write(tmp_path / "readme.md", b"")

    again = shots / ".." / "shots" / "frame_2.JPG"  # same file, other spelling
    found = sio.collect_inputs([shots, str(extra), readme, again, shots])

    # Given order; a folder's files in natural order where the folder is named.
    assert found.images == [
        shots / "frame_1.nef",
        shots / "frame_2.JPG",
        shots / "frame_10.jpg",
        extra,
    ]
    assert found.skipped == [shots / "notes.txt", readme]
    assert (again, shots / "frame_2.JPG") in found.duplicates
    assert len(found.duplicates) == 4  # "again", then the folder's three images once more


def test_files_given_one_by_one_keep_their_order_and_a_link_is_a_duplicate(
    tmp_path: Path,
) -> None:
    a, b, c = (write(tmp_path / f"{n}.jpg", b"") for n in "abc")
    link = tmp_path / "link.jpg"
    link.symlink_to(a)
    found = sio.collect_inputs([a, c, b, link])
    assert found.images == [a, c, b]  # a stack shot back to front, given back to front
    assert found.duplicates == [(link, a)]


def test_collect_inputs_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file or folder") as err:
        sio.collect_inputs([tmp_path, tmp_path / "gone"])
    assert err.value.path == tmp_path / "gone"


def test_image_suffixes_cover_common_formats() -> None:
    for suffix in [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".nef", ".cr2", ".cr3", ".arw"]:
        assert suffix in sio.IMAGE_SUFFIXES
    for suffix in [".orf", ".rw2", ".raf", ".dng", ".pef", ".srw", ".raw"]:
        assert suffix in sio.RAW_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in sio.IMAGE_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".png"])
@pytest.mark.parametrize("make", [rgb8, rgb16])
def test_lossless_round_trip_is_exact(
    tmp_path: Path, suffix: str, make: Callable[[], np.ndarray]
) -> None:
    pixels = make()
    out = sio.write_image(tmp_path / f"out{suffix}", pixels)
    assert out == tmp_path / f"out{suffix}"
    image = sio.read_image(out)
    assert image.pixels.dtype == pixels.dtype
    assert image.bit_depth == pixels.dtype.itemsize * 8
    np.testing.assert_array_equal(image.pixels, pixels)
    assert not image.is_raw
    assert image.source == out


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    pixels = smooth_rgb8()
    image = sio.read_image(sio.write_image(tmp_path / "out.jpg", pixels))
    assert image.pixels.dtype == np.uint8 and image.bit_depth == 8
    error = np.abs(image.pixels.astype(int) - pixels).mean()
    assert error < 1.5


def test_jpeg_is_always_8_bit(tmp_path: Path) -> None:
    pixels = smooth_rgb8().astype(np.uint16) * 257
    image = sio.read_image(sio.write_image(tmp_path / "out.jpeg", pixels, bit_depth=16))
    assert image.bit_depth == 8
    assert np.abs(image.pixels.astype(int) - smooth_rgb8()).mean() < 1.5


def test_float_input_is_clipped_and_scaled(tmp_path: Path) -> None:
    pixels = np.linspace(-0.5, 1.5, 24 * 32 * 3, dtype=np.float32).reshape(24, 32, 3)
    pixels[0, 0, 0] = np.nan
    expected16 = np.rint(np.clip(np.nan_to_num(pixels), 0, 1) * 65535).astype(np.uint16)
    expected8 = np.rint(np.clip(np.nan_to_num(pixels), 0, 1) * 255).astype(np.uint8)

    tiff = sio.read_image(sio.write_image(tmp_path / "f.tif", pixels))  # float -> 16 bit
    png8 = sio.read_image(sio.write_image(tmp_path / "f.png", pixels, bit_depth=8))

    # A product that lands exactly on .5 may round either way: one level in 65535.
    assert np.abs(tiff.pixels.astype(np.int32) - expected16).max() <= 1
    np.testing.assert_array_equal(png8.pixels, expected8)
    assert tiff.pixels[0, 0, 0] == 0 and tiff.pixels[-1, -1, -1] == 65535  # NaN, clipped


def test_infinite_and_nan_samples_are_saturated_and_the_input_kept() -> None:
    pixels = np.array([[0.0, 1.0, 0.5, -3.0, 7.0, np.nan, np.inf, -np.inf]], np.float32)
    before = pixels.copy()
    assert sio._float_to_uint(pixels, np.uint8).tolist() == [[0, 255, 128, 0, 255, 0, 255, 0]]
    assert sio._float_to_uint(pixels, np.uint16)[0, 6] == 65535
    np.testing.assert_array_equal(pixels, before)  # the caller's image is not touched


def test_float64_holds_every_16_bit_value(tmp_path: Path) -> None:
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    stored = np.stack([values, values[::-1], values.T], -1)
    image = sio.read_image(sio.write_image(tmp_path / "f.png", stored / 65535.0))
    np.testing.assert_array_equal(image.pixels, stored)


def test_integer_depth_conversion(tmp_path: Path) -> None:
    eight = rgb8()
    sixteen = np.array([[[0, 128, 129], [383, 384, 65535]]], dtype=np.uint16)
    up = sio.read_image(sio.write_image(tmp_path / "up.tif", eight, bit_depth=16))
    down = sio.read_image(sio.write_image(tmp_path / "down.png", sixteen, bit_depth=8))
    np.testing.assert_array_equal(up.pixels, eight.astype(np.uint16) * 257)
    np.testing.assert_array_equal(down.pixels, [[[0, 0, 1], [1, 1, 255]]])


@pytest.mark.parametrize("suffix", [".tif", ".png", ".jpg"])
def test_gray_output_reads_back_as_rgb(tmp_path: Path, suffix: str) -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (16, 1))
    image = sio.read_image(sio.write_image(tmp_path / f"g{suffix}", gray[..., None]))
    assert image.pixels.shape == (16, 64, 3)
    assert (image.pixels[..., 0] == image.pixels[..., 2]).all()
    assert np.abs(image.pixels[..., 1].astype(int) - gray).max() <= 2


# ---------------------------------------------------------------------------------------------
# Metadata


@pytest.fixture
def camera_jpeg(tmp_path: Path, srgb_icc: bytes) -> Path:
    """A camera-like JPEG: EXIF with an EXIF sub-IFD, and an ICC profile."""
    data = jpeg_bytes(smooth_rgb8(), exif=make_exif(), icc_profile=srgb_icc)
    return write(tmp_path / "camera.jpg", data)


def test_read_jpeg_metadata(camera_jpeg: Path, srgb_icc: bytes) -> None:
    image = sio.read_image(camera_jpeg)
    exif = parse_exif(image.exif)
    assert (exif[MAKE_TAG], exif[MODEL_TAG], exif[DATETIME_TAG]) == (MAKE, MODEL, DATETIME)
    assert image.icc == srgb_icc


@pytest.mark.parametrize(
    ("name", "bit_depth"), [("out.png", 8), ("out.png", 16), ("out.jpg", 8), ("out.tif", 16)]
)
def test_exif_and_icc_are_carried(
    tmp_path: Path, camera_jpeg: Path, srgb_icc: bytes, name: str, bit_depth: int
) -> None:
    source = sio.read_image(camera_jpeg)
    out = sio.write_image(
        tmp_path / name, source.pixels, bit_depth=bit_depth, exif=source.exif, icc=source.icc
    )
    image = sio.read_image(out)

    assert image.bit_depth == bit_depth
    assert image.icc == srgb_icc
    exif = parse_exif(image.exif)
    assert (exif[MAKE_TAG], exif[MODEL_TAG], exif[DATETIME_TAG]) == (MAKE, MODEL, DATETIME)
    sub_ifd = exif.get_ifd(EXIF_IFD)
    if name.endswith(".tif"):  # only baseline tags fit in a TIFF written by tifffile
        assert DATETIME_ORIGINAL not in sub_ifd
    else:
        assert sub_ifd[DATETIME_ORIGINAL] == DATETIME


def test_tiff_input_metadata_keeps_only_descriptive_tags(tmp_path: Path, srgb_icc: bytes) -> None:
    path = tmp_path / "editor.tif"  # Pillow writes the EXIF sub-IFD into a TIFF; tifffile cannot
    Image.fromarray(rgb8()).save(path, format="TIFF", exif=make_exif(), icc_profile=srgb_icc)

    image = sio.read_image(path)

    np.testing.assert_array_equal(image.pixels, rgb8())
    assert image.icc == srgb_icc
    exif = parse_exif(image.exif)
    assert (exif[MAKE_TAG], exif[MODEL_TAG], exif[DATETIME_TAG]) == (MAKE, MODEL, DATETIME)
    assert exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] == DATETIME
    assert not {256, 257, 273, 279, 34675} & set(exif)  # layout tags and ICC stay behind


def test_tiff_carries_core_text_tags_as_ascii(tmp_path: Path) -> None:
    # EXIF text is nominally ASCII; cameras and editors store UTF-8 or Latin-1 in it.
    exif = make_exif(
        extra={
            ARTIST_TAG: "Jürgen Müller".encode(),
            COPYRIGHT_TAG: "© 2024 Zoë".encode("latin-1"),
            DESCRIPTION_TAG: "Moth, 5x",
        }
    )
    image = sio.read_image(sio.write_image(tmp_path / "out.tif", rgb16(), exif=exif))
    parsed = parse_exif(image.exif)
    assert parsed[ARTIST_TAG] == "Jurgen Muller"
    assert parsed[COPYRIGHT_TAG] == " 2024 Zoe"
    assert parsed[DESCRIPTION_TAG] == "Moth, 5x"
    assert parsed[MAKE_TAG] == MAKE


def test_exif_without_header_is_accepted(tmp_path: Path) -> None:
    bare = make_exif().removeprefix(b"Exif\x00\x00")
    image = sio.read_image(sio.write_image(tmp_path / "out.png", rgb8(), exif=bare))
    assert parse_exif(image.exif)[MODEL_TAG] == MODEL


def test_no_metadata_reads_as_none(tmp_path: Path) -> None:
    for name in ["plain.png", "plain.tif", "plain.jpg"]:
        image = sio.read_image(sio.write_image(tmp_path / name, rgb8()))
        assert image.icc is None, name
        assert image.exif is None, name


def test_tiff_without_exif_has_no_exif(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "bare.tif", rgb8(), photometric="rgb", metadata=None)
    assert sio.read_image(tmp_path / "bare.tif").exif is None


def test_rgb_profile_is_left_out_of_gray_output(tmp_path: Path, srgb_icc: bytes) -> None:
    gray = np.zeros((8, 8), np.uint8)
    for name in ["g.png", "g.tif", "g.jpg"]:
        assert sio.read_image(sio.write_image(tmp_path / name, gray, icc=srgb_icc)).icc is None


def test_oversized_exif_is_left_out_of_jpeg(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exif = make_exif(extra={DESCRIPTION_TAG: "x" * 70000})
    with caplog.at_level(logging.WARNING, logger="stackrig.stacking.io"):
        image = sio.read_image(sio.write_image(tmp_path / "big.jpg", rgb8(), exif=exif))
    assert image.exif is None
    assert "too large" in caplog.text
    png = sio.read_image(sio.write_image(tmp_path / "big.png", rgb8(), exif=exif))
    assert parse_exif(png.exif)[DESCRIPTION_TAG] == "x" * 70000  # PNG has no such limit


# ---------------------------------------------------------------------------------------------
# Orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_read_and_reset_on_write(
    tmp_path: Path, orientation: int
) -> None:
    stored = rgb8(5, 7)
    data = png_bytes(Image.fromarray(stored), exif=make_exif(orientation))
    path = write(tmp_path / "in.png", data)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))

    image = sio.read_image(path)
    np.testing.assert_array_equal(image.pixels, upright)
    assert parse_exif(image.exif)[ORIENTATION_TAG] == orientation  # the block as stored

    again = sio.read_image(sio.write_image(tmp_path / "out.png", image.pixels, exif=image.exif))
    np.testing.assert_array_equal(again.pixels, upright)  # not turned a second time
    exif = parse_exif(again.exif)
    assert exif[ORIENTATION_TAG] == 1
    assert exif[MAKE_TAG] == MAKE
    assert exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] == DATETIME


def test_jpeg_orientation_is_applied(tmp_path: Path) -> None:
    stored = smooth_rgb8()
    path = write(tmp_path / "portrait.jpg", jpeg_bytes(stored, exif=make_exif(6)))
    image = sio.read_image(path)
    assert image.pixels.shape == (64, 48, 3)
    assert np.abs(image.pixels.astype(int) - np.rot90(stored, -1)).mean() < 1.5


@pytest.mark.parametrize("samples", [3, 5])  # 5 samples: OpenCV refuses, tifffile decodes
def test_tiff_orientation_is_applied_once(tmp_path: Path, samples: int) -> None:
    stored = np.random.default_rng(1).integers(0, 256, (5, 7, samples), dtype=np.uint8)
    path = tmp_path / "turned.tif"
    extra = {"extrasamples": [0] * (samples - 3)} if samples > 3 else {}
    tifffile.imwrite(path, stored, photometric="rgb", extratags=[(274, "H", 1, 6, True)], **extra)
    image = sio.read_image(path)
    np.testing.assert_array_equal(image.pixels, np.rot90(stored[..., :3], -1))


# ---------------------------------------------------------------------------------------------
# Damaged and unusual inputs


def test_truncated_jpeg_is_detected(tmp_path: Path) -> None:
    data = jpeg_bytes(rgb8(64, 64))
    for cut in [len(data) - 2, len(data) // 2, 600]:
        with pytest.raises(ImageReadError, match=r"truncated.*copy it again"):
            sio.read_image(write(tmp_path / "cut.jpg", data[:cut]))


def test_truncated_progressive_jpeg_is_detected(tmp_path: Path) -> None:
    data = jpeg_bytes(rgb8(64, 64), progressive=True)
    sio.read_image(write(tmp_path / "whole.jpg", data))
    with pytest.raises(ImageReadError, match="truncated"):
        sio.read_image(write(tmp_path / "cut.jpg", data[: len(data) * 2 // 3]))


def test_jpeg_padded_with_zeros_or_trailer_loads(tmp_path: Path, srgb_icc: bytes) -> None:
    data = jpeg_bytes(smooth_rgb8(), exif=make_exif(), icc_profile=srgb_icc)
    expected = sio.read_image(write(tmp_path / "plain.jpg", data)).pixels
    for name, tail in [("zeros.jpg", b"\x00" * 5000), ("trailer.jpg", b"SEFT\xff\xd8trailer")]:
        image = sio.read_image(write(tmp_path / name, data + tail))
        np.testing.assert_array_equal(image.pixels, expected)
        assert parse_exif(image.exif)[MAKE_TAG] == MAKE


def test_truncated_png_is_detected(tmp_path: Path) -> None:
    data = png_bytes(Image.fromarray(rgb8(64, 64)))
    with pytest.raises(ImageReadError, match="truncated"):
        sio.read_image(write(tmp_path / "cut.png", data[: len(data) // 2]))


def test_empty_and_zero_files(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="empty"):
        sio.read_image(write(tmp_path / "empty.jpg", b""))
    with pytest.raises(ImageReadError, match="empty"):
        sio.read_image(write(tmp_path / "empty.nef", b""))
    with pytest.raises(ImageReadError, match="only zero bytes"):
        sio.read_image(write(tmp_path / "zeros.jpg", bytes(4096)))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("garbage.jpg", bytes(np.random.default_rng(2).integers(1, 256, 4096, dtype=np.uint8))),
        ("notes.png", b"this is a text file, not a picture\n"),
        ("page.tif", b"<html><body>404 Not Found</body></html>"),
    ],
)
def test_non_images_are_refused(tmp_path: Path, name: str, data: bytes) -> None:
    with pytest.raises(ImageReadError, match="not a JPEG, PNG or TIFF") as err:
        sio.read_image(write(tmp_path / name, data))
    assert err.value.path.name == name
    assert str(err.value).startswith(f"{name}: ")


def test_damaged_jpeg_body_is_refused(tmp_path: Path) -> None:
    data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20) + b"\xff\xd9"
    with pytest.raises(ImageReadError, match="damaged"):
        sio.read_image(write(tmp_path / "broken.jpg", data))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        sio.read_image(tmp_path / "gone.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        sio.read_image(tmp_path)


def test_content_wins_over_extension(tmp_path: Path) -> None:
    pixels = rgb8()
    image = sio.read_image(write(tmp_path / "really_png.jpg", png_bytes(Image.fromarray(pixels))))
    np.testing.assert_array_equal(image.pixels, pixels)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_other_png_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    source = Image.fromarray(rgb8()).convert(mode)
    image = sio.read_image(write(tmp_path / "in.png", png_bytes(source)))
    expected = np.asarray(source.convert("RGB"))
    assert image.pixels.shape == (24, 32, 3) and image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, expected)


def test_16_bit_gray_png_stays_16_bit(tmp_path: Path) -> None:
    gray = np.random.default_rng(3).integers(0, 65536, (10, 12), dtype=np.uint16)
    image = sio.read_image(write(tmp_path / "g16.png", png_bytes(Image.fromarray(gray))))
    assert image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, np.repeat(gray[..., None], 3, axis=2))


def test_float_tiff_becomes_uint16(tmp_path: Path) -> None:
    pixels = np.random.default_rng(4).random((10, 12, 3), dtype=np.float32) * 1.2 - 0.1
    tifffile.imwrite(tmp_path / "f.tif", pixels, photometric="rgb")
    image = sio.read_image(tmp_path / "f.tif")
    assert image.bit_depth == 16
    expected = np.clip(pixels.astype(np.float64), 0, 1) * 65535  # exact, before rounding
    # Rounded to the nearest, up to float32's precision of the product (OpenCV 5 multiplies
    # float32 in float32): 65535 * 2**-23 is 0.008 of a level.
    assert np.abs(image.pixels - expected).max() <= 0.5 + 65535 * 2.0**-23


def test_rgba_and_multipage_tiff(tmp_path: Path) -> None:
    rgba = rgb16(seed=5)[..., [0, 1, 2, 0]]
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=[2])
    np.testing.assert_array_equal(sio.read_image(tmp_path / "rgba.tif").pixels, rgba[..., :3])

    pages = np.stack([rgb8(seed=6), rgb8(seed=7)])
    tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="rgb")
    np.testing.assert_array_equal(sio.read_image(tmp_path / "pages.tif").pixels, pages[0])


def test_32_bit_integer_tiff_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "i32.tif", np.zeros((4, 4), np.int32))
    with pytest.raises(ImageReadError, match=r"not supported.*16-bit TIFF"):
        sio.read_image(tmp_path / "i32.tif")


# ---------------------------------------------------------------------------------------------
# RAW


def test_junk_raw_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not a RAW file LibRaw can read") as err:
        sio.read_image(write(tmp_path / "DSC_0001.NEF", b"not really a raw file" * 100))
    assert err.value.path.name == "DSC_0001.NEF"


def test_tiny_dng_is_read_with_libraw(tmp_path: Path) -> None:
    """A minimal DNG built with tifffile: RGGB mosaic, camera orientation 6 (portrait)."""
    mosaic = np.zeros((64, 96), np.uint16)
    mosaic[0::2, 0::2], mosaic[1::2, 1::2] = 20000, 5000  # R, B
    mosaic[0::2, 1::2] = mosaic[1::2, 0::2] = 10000  # G
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "Test Cam", True),  # UniqueCameraModel
        (271, "s", 0, MAKE, True),
        (272, "s", 0, MODEL, True),
        (274, "H", 1, 6, True),  # Orientation
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50721, "2i", 9, identity, True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
    ]
    path = tmp_path / "tiny.dng"
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=tags, metadata=None)

    image = sio.read_image(path)

    assert image.is_raw and image.bit_depth == 16
    assert image.pixels.dtype == np.uint16
    assert image.pixels.shape == (96, 64, 3)  # turned upright by LibRaw
    assert image.pixels.max() > 0
    assert parse_exif(image.exif)[MODEL_TAG] == MODEL


def test_rawpy_is_imported_only_when_needed() -> None:
    code = "import sys, stacking.io; print('rawpy' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# Write errors and atomicity


def test_write_to_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="does not exist"):
        sio.write_image(tmp_path / "nope" / "out.tif", rgb8())


def test_unknown_suffix_names_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match=r"\.jpg.*\.png.*\.tif") as err:
        sio.write_image(tmp_path / "out.bmp", rgb8())
    assert "out.bmp" in str(err.value)
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("pixels", "options", "message"),
    [
        (np.zeros((4, 4, 4), np.uint8), {}, "H x W x 3"),
        (np.zeros((0, 4, 3), np.uint8), {}, "H x W x 3"),
        (np.zeros((4, 4, 3), np.int32), {}, "int32"),
        (np.zeros((4, 4, 3), np.uint8), {"bit_depth": 12}, "8 or 16"),
        (np.zeros((4, 4, 3), np.uint8), {"jpeg_quality": 0}, "quality"),
    ],
)
def test_bad_write_arguments(
    tmp_path: Path, pixels: np.ndarray, options: dict, message: str
) -> None:
    with pytest.raises(ImageWriteError, match=message):
        sio.write_image(tmp_path / "out.png", pixels, **options)


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    for name in ["a.tif", "b.png", "c.jpg", "d.json"]:
        if name.endswith(".json"):
            files.write_json(tmp_path / name, {"a": 1})
        else:
            sio.write_image(tmp_path / name, rgb8())
    sio.write_image(tmp_path / "a.tif", rgb16())  # overwrite in place
    assert listing(tmp_path) == ["a.tif", "b.png", "c.jpg", "d.json"]
    assert sio.read_image(tmp_path / "a.tif").bit_depth == 16


@pytest.mark.parametrize(
    ("failure", "raised"),
    [(OSError(28, "No space left on device"), ImageWriteError), (ValueError("bug"), ValueError)],
)
def test_failed_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception, raised: type
) -> None:
    target = sio.write_image(tmp_path / "out.tif", rgb8())
    before = target.read_bytes()

    def encoder_fails(fh: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        fh.write(b"partial")
        raise failure

    monkeypatch.setattr(sio.tifffile, "imwrite", encoder_fails)
    with pytest.raises(raised, match=str(failure.args[-1])):
        sio.write_image(target, rgb16())
    assert target.read_bytes() == before
    assert listing(tmp_path) == ["out.tif"]


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_round_trip(tmp_path: Path) -> None:
    data = {"frames": [1, 2, 3], "name": "Motte – 5×", "nested": {"ok": True, "none": None}}
    path = files.write_json(tmp_path / "meta.json", data)
    assert files.read_json(path) == data
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and '\n  "frames"' in text and "Motte – 5×" in text
    assert json.loads(text) == data


def test_bad_json_names_file_and_place(tmp_path: Path) -> None:
    write(tmp_path / "meta.json", b'{\n  "a": 1,\n  oops\n}')
    with pytest.raises(StackingError, match=r"meta\.json: not valid JSON \(line 3"):
        files.read_json(tmp_path / "meta.json")
    write(tmp_path / "latin.json", '{"a": "é"}'.encode("latin-1"))
    with pytest.raises(StackingError, match="not valid JSON"):
        files.read_json(tmp_path / "latin.json")
    with pytest.raises(StackingError, match="no such file"):
        files.read_json(tmp_path / "gone.json")


def test_unserialisable_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="JSON"):
        files.write_json(tmp_path / "x.json", {"a": object()})
    assert listing(tmp_path) == []


@pytest.mark.parametrize("compress", [False, True])
def test_tiff_is_uncompressed_unless_asked_and_reads_back_the_same(
    tmp_path: Path, compress: bool
) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 65536, (600, 900, 3), dtype=np.uint16)
    path = tmp_path / "stack.tif"
    files.commit([sio.stage_image(path, pixels, compress=compress)])
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.compression == (tifffile.COMPRESSION.ADOBE_DEFLATE if compress else 1)
        np.testing.assert_array_equal(page.asarray(), pixels)


def test_float_to_integer_conversion_fixes_nan_and_inf_and_keeps_the_input(tmp_path: Path) -> None:
    # Large enough to be split into row bands on every core.
    pixels = np.linspace(0, 1, 2000 * 1500 * 3, dtype=np.float32).reshape(2000, 1500, 3)
    pixels[0, 0] = [np.nan, np.inf, -np.inf]
    before = pixels.copy()
    path = tmp_path / "stack.tif"
    files.commit([sio.stage_image(path, pixels, bit_depth=8)])
    out = tifffile.imread(path)
    assert out[0, 0].tolist() == [0, 255, 0]
    expected = np.round(before[1:] * 255).astype(np.uint8)
    assert np.abs(out[1:].astype(int) - expected).max() <= 1
    assert np.array_equal(pixels, before, equal_nan=True)
