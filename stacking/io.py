"""Image files: reading and writing pixels with their metadata (writes go through files.py).

Pixels
    ``read_image`` returns H x W x 3 RGB arrays of dtype uint8 or uint16, *upright*: the EXIF/TIFF
    Orientation is applied on read (RAW files are turned by LibRaw). ``write_image`` therefore
    writes pixels as given and sets Orientation to 1 in the EXIF it writes.

EXIF
    ``ImageFile.exif`` and the ``exif`` argument of ``write_image`` are an EXIF block that starts
    with the ``b"Exif\\0\\0"`` header, as in a JPEG APP1 segment (``write_image`` also accepts it
    without the header). For JPEG and PNG ``read_image`` returns the file's block as stored; for
    TIFF and TIFF-based RAW (DNG, NEF, CR2, ARW, PEF, ...) a block built from the descriptive tags
    of IFD0 and its EXIF and GPS sub-IFDs; for other RAW (CR3, RAF, ORF, RW2) None. Either way it
    may still say e.g. Orientation 6 for pixels that are already upright.

What ``write_image`` carries
    JPEG  the whole EXIF block (APP1) and the ICC profile (APP2). A block over the 64 KiB that
          JPEG allows is left out, with a warning in the log.
    PNG   the whole EXIF block (eXIf chunk) and the ICC profile (iCCP chunk), 8 and 16 bit.
    TIFF  the ICC profile (tag 34675). tifffile cannot write an EXIF sub-IFD, so of the EXIF only
          ImageDescription, Make, Model, DateTime, Artist and Copyright are carried, as baseline
          TIFF tags, folded to ASCII as TIFF requires. Exposure, lens, DateTimeOriginal, GPS and
          maker notes are not carried into TIFF.
    The EXIF block is copied byte for byte, except when its Orientation must be reset: then Pillow
    re-serialises it and the embedded thumbnail is dropped. An ICC profile whose colour space does
    not match the pixels (an RGB profile on a gray image) is left out, since readers reject it.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import tifffile
from PIL import Image

from stacking import bands, files
from stacking.errors import ImageReadError, ImageWriteError
from stacking.settings import MAX_PIXELS, OUTPUT_FORMATS

_log = logging.getLogger("stackrig.stacking.io")
# Pillow only parses headers and writes here; the frame size limit is MAX_PIXELS, checked first.
Image.MAX_IMAGE_PIXELS = None

RAW_SUFFIXES: frozenset[str] = frozenset(
    {
        ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff", ".iiq", ".k25",
        ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2",
        ".rwl", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip
IMAGE_SUFFIXES: frozenset[str] = (
    frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"}) | RAW_SUFFIXES
)

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_ICC_PROFILE = 34675
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
# Baseline TIFF text tags: the part of the EXIF a TIFF written by tifffile can hold.
_TIFF_TEXT_TAGS = (270, 271, 272, 306, 315, 33432)
_DESCRIPTION = 270
_JPEG_MAX_EXIF = 65533  # APP1 payload limit (65535 minus the length field)

# Keep the file's bit depth, drop alpha, and leave orientation to us (OpenCV ignores it for JPEG
# and PNG with these flags, but always applies the TIFF Orientation tag itself).
_CV2_READ_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION
_CV2_RGB_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION  # 8-bit colour JPEG

# In JPEG entropy-coded data, FF00 is an escaped FF byte and FFD0-FFD7 are restart markers;
# any other FFxx (FF runs being fill) is the next real marker.
_JPEG_SCAN_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_NO_LENGTH = frozenset({0x00, 0x01, *range(0xD0, 0xD9)})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # IEND chunk type and its fixed CRC
_PNG_AFTER_IHDR = 8 + 8 + 13 + 4  # signature, IHDR length + type, 13 data bytes, CRC

_COPY_AGAIN = "the copy from the camera did not finish; copy it again"
_DIGITS = re.compile(r"(\d+)")


# ---------------------------------------------------------------------------------------------
# Finding inputs


def natural_key(path: str | Path) -> tuple[tuple[tuple[str | int, ...], ...], str]:
    """Sort key for "human" order: frame_2 before frame_10, case-insensitive, folder by folder.

    Each path component becomes alternating text and number pieces (text first), so keys of any
    two names compare without mixing str and int. The path text breaks ties (frame_01/frame_1,
    A/a), which keeps the order total and stable.
    """
    return tuple(_natural_piece(part) for part in Path(path).parts), str(path)


def _natural_piece(text: str) -> tuple[str | int, ...]:
    pieces = _DIGITS.split(text.casefold())
    return tuple(int(piece) if i % 2 else piece for i, piece in enumerate(pieces))


@dataclass(frozen=True)
class InputList:
    """What ``collect_inputs`` found: images to stack and files it left out (the caller warns)."""

    images: list[Path]
    skipped: list[Path]
    # (dropped, kept): a file reached again (given twice, through a folder and by name, or
    # through a link) is stacked once, where it came first
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)


def collect_inputs(inputs: Sequence[str | Path]) -> InputList:
    """Expand folders (direct children only, hidden files ignored) and files into input images.

    The order is the one given: files where they are named, each folder's files in natural
    order (frame_2 before frame_10) where the folder is named; a stack shot from the far end
    can be given file by file. A missing path raises ImageReadError.
    """
    images: dict[Path, Path] = {}
    skipped: dict[Path, Path] = {}
    duplicates: list[tuple[Path, Path]] = []
    for given in inputs:
        for path in _candidates(Path(given)):
            bucket = images if path.suffix.lower() in IMAGE_SUFFIXES else skipped
            first = bucket.setdefault(path.resolve(), path)
            if first is not path and bucket is images:
                duplicates.append((path, first))
    return InputList(list(images.values()), list(skipped.values()), duplicates)


def _candidates(path: Path) -> list[Path]:
    if path.is_dir():
        files = [p for p in path.iterdir() if not p.name.startswith(".") and not p.is_dir()]
        return sorted(files, key=natural_key)
    if path.exists():
        return [path]
    raise ImageReadError(path, "no such file or folder")


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class ImageFile:
    """A decoded image: upright RGB pixels at the file's native depth, plus its metadata."""

    pixels: np.ndarray  # H x W x 3, RGB, uint8 or uint16
    bit_depth: int  # 8 or 16
    exif: bytes | None  # EXIF block starting with b"Exif\0\0" (see the module docstring)
    icc: bytes | None  # ICC profile
    source: Path
    is_raw: bool
    mono: bool = False  # the file held one channel (gray): its stack is written gray too


@dataclass(frozen=True)
class _Metadata:
    exif: bytes | None = None
    icc: bytes | None = None
    orientation: int = 1
    colour: bool = False  # three colour components (Pillow's "RGB" mode), from the header


def read_image(path: str | Path) -> ImageFile:
    """Read a JPEG, PNG, TIFF or camera RAW file.

    JPEG, PNG and TIFF are recognised by their content, so a PNG named .jpg still loads; RAW
    files by their suffix. Gray becomes RGB, alpha is dropped, floating point TIFF becomes uint16
    (values in [0, 1] scaled to 0..65535, outside clipped); other sample types (signed or 32-bit
    integers) are refused rather than guessed at. Every failure raises ImageReadError with a
    reason a photographer can act on.
    """
    path = Path(path)
    data = _read_file(path)
    if path.suffix.lower() in RAW_SUFFIXES:
        return _read_raw(path, data)
    kind = _sniff(path, data)
    _check_complete(path, data, kind)
    check_size(path, _header_size(io.BytesIO(data)))
    meta = _tiff_metadata(data) if kind == "tiff" else _pillow_metadata(data)
    pixels, mono = _decode(path, data, kind, meta)
    return ImageFile(
        pixels=pixels,
        bit_depth=8 if pixels.dtype == np.uint8 else 16,
        exif=meta.exif,
        icc=meta.icc,
        source=path,
        is_raw=False,
        mono=mono,
    )


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, decoding no pixels; None for RAW or unreadable."""
    path = Path(path)
    if path.suffix.lower() in RAW_SUFFIXES:
        return None
    try:
        with open(path, "rb") as fh:
            return _header_size(fh)
    except OSError:
        return None


def check_size(path: Path, size: tuple[int, int] | None) -> None:
    """Refuse a frame too large to stack before any time or memory is spent on it."""
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        w, h = size
        raise ImageReadError(
            path,
            f"is {w}x{h} ({w * h / 1e6:.0f} MP); stackrig stacks frames of up to "
            f"{MAX_PIXELS / 1e6:.0f} MP: scale the frames down or crop them first",
        )


def _header_size(fh: BinaryIO) -> tuple[int, int] | None:
    try:
        if fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            fh.seek(0)
            with tifffile.TiffFile(fh) as tif:
                page = tif.pages.first
                return int(page.imagewidth), int(page.imagelength)
        fh.seek(0)
        with Image.open(fh) as im:  # parses the header only
            return im.size
    except Exception:  # unreadable headers are reported by the decoder, with its reason
        return None


def _read_file(path: Path) -> bytes:
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(path, "no such file") from exc
    except OSError as exc:
        raise ImageReadError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageReadError(path, f"file is empty (0 bytes): {_COPY_AGAIN}")
    return data


def _sniff(path: Path, data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.count(0) == len(data):
        raise ImageReadError(path, f"file holds only zero bytes: {_COPY_AGAIN}")
    raise ImageReadError(
        path,
        "not a JPEG, PNG or TIFF image (its content is something else); if it is a camera RAW "
        "file, give it the camera's RAW extension (.nef, .cr2, .arw, ...)",
    )


def _check_complete(path: Path, data: bytes, kind: str) -> None:
    """Catch truncated files, which OpenCV would silently decode as partly gray images."""
    if kind == "jpeg" and not _jpeg_reaches_end(data):
        raise ImageReadError(path, f"file is truncated (JPEG end marker missing): {_COPY_AGAIN}")
    if kind == "png" and data.rfind(_PNG_END) < 0:
        raise ImageReadError(path, f"file is truncated (PNG end chunk missing): {_COPY_AGAIN}")


def _jpeg_reaches_end(data: bytes) -> bool:
    """Walk the JPEG segments to the end-of-image marker of the main image.

    Walking (rather than checking the last bytes) accepts zero padding after the end marker, as
    written by the virtual camera, and trailers that some cameras append; it skips the EXIF
    thumbnail, whose own end marker sits inside the APP1 segment.
    """
    pos = 2  # after the start-of-image marker
    while True:
        pos = data.find(b"\xff", pos)  # also steps over stray bytes between segments
        if pos < 0 or pos + 1 >= len(data):
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        if pos + 4 > len(data):
            return False
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            found = _JPEG_SCAN_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()


def _decode(path: Path, data: bytes, kind: str, meta: _Metadata) -> tuple[np.ndarray, bool]:
    """(upright RGB pixels, whether the file held gray)."""
    orientation = meta.orientation
    if kind == "jpeg" and meta.colour:
        # Straight into RGB: 24 MP in 0.06 s, against 0.14 s decoding to BGR and swapping.
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), _CV2_RGB_FLAGS)
        if rgb is not None:
            return _apply_orientation(rgb, orientation), False
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), _CV2_READ_FLAGS)
    except cv2.error:
        decoded = None
    if decoded is not None:
        pixels = _to_rgb(_native_depth(path, decoded), bgr=True)
        # OpenCV has already applied a TIFF's Orientation tag.
        upright = pixels if kind == "tiff" else _apply_orientation(pixels, orientation)
        return upright, _is_gray(decoded)
    if kind == "tiff":
        raw = _decode_tiff(path, data)
        pixels = _to_rgb(_native_depth(path, raw), bgr=False)
        return _apply_orientation(pixels, orientation), _is_gray(raw)
    raise ImageReadError(
        path, f"file is damaged ({kind.upper()} data cannot be decoded); copy it again"
    )


def _decode_tiff(path: Path, data: bytes) -> np.ndarray:
    """First page of a TIFF that OpenCV refuses (e.g. more than four samples per pixel)."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            pixels = page.asarray()
            if page.axes.startswith("S"):  # planar: samples first
                pixels = np.moveaxis(pixels, 0, -1)
    except Exception as exc:  # tifffile raises many types for damaged or exotic files
        raise ImageReadError(
            path,
            f"TIFF cannot be decoded ({exc}); re-save it as an uncompressed, LZW or ZIP TIFF",
        ) from exc
    if pixels.ndim not in (2, 3):
        raise ImageReadError(path, f"TIFF page has unsupported shape {pixels.shape}")
    return pixels


def _native_depth(path: Path, pixels: np.ndarray) -> np.ndarray:
    """uint8 and uint16 pass; float becomes uint16; bilevel becomes uint8; the rest is refused."""
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * np.uint8(255)
    if pixels.dtype.kind == "f":
        return _float_to_uint(pixels, np.uint16)
    raise ImageReadError(
        path,
        f"{pixels.dtype} samples are not supported (32-bit or signed integers); "
        "save the image as an 8- or 16-bit TIFF",
    )


def _is_gray(decoded: np.ndarray) -> bool:
    return decoded.ndim == 2 or decoded.shape[2] <= 2  # gray, or gray + alpha


def _to_rgb(pixels: np.ndarray, *, bgr: bool) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] <= 2:  # gray, or gray + alpha
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_GRAY2RGB)
    if bgr and pixels.shape[2] in (3, 4):  # OpenCV's swap is several times numpy's reversed copy
        return cv2.cvtColor(
            pixels, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        )
    pixels = pixels[..., :3]  # drops alpha and any extra samples
    return np.ascontiguousarray(pixels[..., ::-1] if bgr else pixels)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with an EXIF/TIFF Orientation (1-8) upright."""
    transform = _UPRIGHT.get(orientation)
    return pixels if transform is None else np.ascontiguousarray(transform(pixels))


_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _pillow_metadata(data: bytes) -> _Metadata:
    """EXIF, ICC and orientation of a JPEG or PNG; Pillow parses headers without decoding pixels.

    Best effort, like _tiff_metadata: pixels that decode still load if the metadata cannot.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            icc = im.info.get("icc_profile") or None
            # From info, not im.getexif(): for a PNG without eXIf that decodes all pixels.
            exif = im.info.get("exif") or None
            colour = im.mode == "RGB"
        orientation = _parse_exif(exif).get(_ORIENTATION, 1) if exif else 1
        return _Metadata(exif=exif, icc=icc, orientation=int(orientation), colour=colour)
    except Exception as exc:  # Pillow raises many types for data it cannot parse
        _log.debug("no metadata: %s", exc)
        return _Metadata()


def _tiff_metadata(data: bytes) -> _Metadata:
    """EXIF, ICC and orientation from IFD0 of a TIFF or TIFF-based RAW (DNG, NEF, CR2, ARW...).

    IFD0 also holds layout tags (strips, sample format), so only the descriptive ones are kept.
    """
    try:
        ifd0 = _parse_exif(data)  # an EXIF block is a TIFF structure, so Pillow parses both
        icc = ifd0.get(_ICC_PROFILE)
        return _Metadata(
            exif=_descriptive_exif(ifd0),
            icc=bytes(icc) if icc else None,
            orientation=int(ifd0.get(_ORIENTATION, 1)),
        )
    except Exception as exc:  # not TIFF-based (CR3, RAF, ORF, RW2) or damaged
        _log.debug("no metadata: %s", exc)
        return _Metadata()


def _describes_layout(value: object) -> bool:
    """An ImageDescription that tifffile or ImageJ wrote about the file's own layout (shape,
    axes, slices): untrue of any other file, so it is never carried into an output."""
    text = value.strip() if isinstance(value, str) else ""
    return (text.startswith("{") and '"shape"' in text) or text.startswith("ImageJ=")


def _parse_exif(block: bytes) -> Image.Exif:
    parsed = Image.Exif()
    parsed.load(block.removeprefix(_EXIF_HEADER))
    return parsed


def _descriptive_exif(ifd0: Image.Exif) -> bytes | None:
    out = Image.Exif()
    for tag in (*_TIFF_TEXT_TAGS, _ORIENTATION):
        if tag in ifd0 and not (tag == _DESCRIPTION and _describes_layout(ifd0[tag])):
            out[tag] = ifd0[tag]
    for tag in (_EXIF_IFD, _GPS_IFD):
        sub_ifd = ifd0.get_ifd(tag)
        if sub_ifd:
            out[tag] = sub_ifd
    return out.tobytes() if len(out) else None


def _read_raw(path: Path, data: bytes) -> ImageFile:
    import rawpy  # lazily: LibRaw is loaded only when a RAW file is actually read

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            # LibRaw turns the image upright (its flip), as _apply_orientation does for others.
            pixels = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16)
    except rawpy.LibRawError as exc:
        raise ImageReadError(
            path,
            f"not a RAW file LibRaw can read ({exc}); the file may be damaged (copy it again), "
            "or the camera too new for this LibRaw (convert it to DNG or TIFF)",
        ) from exc
    meta = _tiff_metadata(data)
    return ImageFile(
        pixels=pixels, bit_depth=16, exif=meta.exif, icc=meta.icc, source=path, is_raw=True
    )


# ---------------------------------------------------------------------------------------------
# Writing


def write_image(path: str | Path, pixels: np.ndarray, **options: Any) -> Path:
    """Write pixels atomically (see :func:`stage_image` for the options); return the path."""
    return files.commit([stage_image(path, pixels, **options)])[0]


def stage_image(
    path: str | Path,
    pixels: np.ndarray,
    *,
    bit_depth: int | None = None,
    exif: bytes | None = None,
    icc: bytes | None = None,
    jpeg_quality: int = 95,
    compress: bool = False,
) -> files.Staged:
    """Encode pixels as TIFF, PNG or JPEG (chosen by the suffix) into a staged temp file.

    pixels: H x W x 3 RGB or H x W gray; float in [0, 1] (clipped, NaN as 0), uint8 or uint16.
    bit_depth: 8 or 16 for TIFF and PNG; by default 8 for uint8 input and 16 otherwise. JPEG is
    always 8-bit: bit_depth=16 silently becomes 8. JPEG is written with full chroma (4:4:4), so
    the fine detail a stack exists for keeps its colour. See the module docstring for what EXIF
    and ICC each format carries. compress: zlib inside a TIFF (PNG always is compressed):
    about 60 % smaller for 8-bit, but a 24 MP stack takes ~0.4 s longer to write on 2 cores.
    """
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        allowed = ", ".join(sorted(OUTPUT_FORMATS))
        raise ImageWriteError(f"{path.name}: cannot write this file type; use one of {allowed}")
    if bit_depth not in (None, 8, 16):
        raise ImageWriteError(f"{path.name}: bit depth must be 8 or 16, not {bit_depth}")
    if not 1 <= jpeg_quality <= 100:
        raise ImageWriteError(f"{path.name}: JPEG quality must be 1-100, not {jpeg_quality}")
    pixels = _check_shape(path, pixels)
    # JPEG is 8-bit only; by default uint8 stays 8-bit and everything else becomes 16-bit.
    depth = 8 if fmt == "jpeg" else bit_depth or (8 if pixels.dtype == np.uint8 else 16)
    pixels = _to_depth(path, pixels, depth)
    exif = _exif_for_output(exif)
    icc = _icc_for_output(icc, gray=pixels.ndim == 2)
    writers: dict[str, Callable[[BinaryIO], None]] = {
        "tiff": partial(_write_tiff, pixels=pixels, exif=exif, icc=icc, compress=compress),
        "png": partial(_write_png, pixels=pixels, exif=exif, icc=icc),
        "jpeg": partial(_write_jpeg, pixels=pixels, exif=exif, icc=icc, quality=jpeg_quality),
    }
    return files.stage(path, writers[fmt])


def stage_palette_png(path: str | Path, indices: np.ndarray, palette: np.ndarray) -> files.Staged:
    """An indexed-colour PNG: uint8 ``indices`` (H x W) into ``palette`` (up to 256 x 3 RGB).

    A third of an RGB PNG's data for a picture of few colours (a depth map): at 24 MP it
    encodes in ~0.1 s against ~0.25 s, and every viewer shows it in full colour.
    """
    path = Path(path)
    if indices.dtype != np.uint8 or indices.ndim != 2:
        raise ImageWriteError(f"{path.name}: palette indices must be H x W uint8")
    image = Image.fromarray(np.ascontiguousarray(indices), "L")
    image.putpalette(np.ascontiguousarray(palette, np.uint8).tobytes(), "RGB")
    return files.stage(path, lambda fh: image.save(fh, "PNG", compress_level=3))


def _check_shape(path: Path, pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.size == 0 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ImageWriteError(
            f"{path.name}: pixels must be H x W x 3 (RGB) or H x W (gray), not {pixels.shape}"
        )
    return pixels


def _to_depth(path: Path, pixels: np.ndarray, depth: int) -> np.ndarray:
    target = np.dtype(np.uint8 if depth == 8 else np.uint16)
    if pixels.dtype == target:
        return pixels
    if pixels.dtype.kind == "f":
        return _float_to_uint(pixels, target)
    if pixels.dtype == np.uint8:  # to 16 bit: 255 -> 65535 exactly
        return pixels.astype(np.uint16) * np.uint16(257)
    if pixels.dtype == np.uint16:  # to 8 bit, rounded
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise ImageWriteError(
        f"{path.name}: cannot write {pixels.dtype} pixels; give float in [0, 1], uint8 or uint16"
    )


def _float_to_uint(pixels: np.ndarray, dtype: np.dtype[Any] | type) -> np.ndarray:
    """[0, 1] to the full range of ``dtype``, rounded and saturated; NaN to 0. OpenCV's
    saturating multiply does in one pass what numpy needs five temporaries for (24 MP: 0.3 s
    instead of 1.5 s), here in row bands on every core."""
    top = float(np.iinfo(dtype).max)
    # One channel: a scalar reaches every sample (on 3 channels it would reach the first).
    work = np.ascontiguousarray(pixels, dtype=np.float32).reshape(pixels.shape[0], -1)
    # The sum (in float64: no float32 can overflow it) is finite exactly when every sample
    # is; seven times quicker than cv2.checkRange.
    if not math.isfinite(cv2.sumElems(work)[0]):  # NaN or inf (rare): fixed in a copy
        work = work.copy()
        cv2.patchNaNs(work, 0.0)
        cv2.min(work, 2.0, dst=work)  # +inf would round to INT_MIN, saturating to 0, not top
    depth = cv2.CV_16U if np.dtype(dtype) == np.uint16 else cv2.CV_8U
    out = np.empty(work.shape, dtype)

    def convert(src: np.ndarray, dst: np.ndarray) -> None:
        cv2.multiply(src, top, dst=dst, dtype=depth)

    bands.run(convert, work, out)
    return out.reshape(pixels.shape)


def _exif_for_output(exif: bytes | None) -> bytes | None:
    """The EXIF block with its header, Orientation reset to 1 (pixels are written upright)."""
    if not exif:
        return None
    try:
        parsed = _parse_exif(exif)
    except Exception as exc:  # Pillow raises many types for a damaged block
        _log.warning("EXIF block cannot be parsed (%s); writing without EXIF", exc)
        return None
    if parsed.get(_ORIENTATION, 1) == 1:
        return _EXIF_HEADER + exif.removeprefix(_EXIF_HEADER)
    parsed[_ORIENTATION] = 1
    return parsed.tobytes()


def _icc_for_output(icc: bytes | None, *, gray: bool) -> bytes | None:
    """The profile, if its colour space (header bytes 16-19) matches the pixels."""
    if not icc:
        return None
    if icc[16:20] != (b"GRAY" if gray else b"RGB "):
        _log.warning("ICC profile colour space %r does not match the pixels; left out", icc[16:20])
        return None
    return icc


def _write_tiff(
    fh: BinaryIO, *, pixels: np.ndarray, exif: bytes | None, icc: bytes | None, compress: bool
) -> None:
    # Uncompressed by default, as the stacking peers write: every reader opens it and the stack
    # is on disk moments after the last frame. zlib works with tifffile alone (stdlib zlib, no
    # imagecodecs); level 1 writes 24 MP in ~0.4 s instead of ~6 s, files ~15 % larger.
    zlib_args: dict[str, Any] = {
        "compression": "zlib",
        "compressionargs": {"level": 1},
        "predictor": True,
        "maxworkers": os.cpu_count() or 1,  # strips compressed in parallel: zlib frees the GIL
    }
    tifffile.imwrite(
        fh,
        pixels,
        photometric="rgb" if pixels.ndim == 3 else "minisblack",
        **(zlib_args if compress else {}),
        iccprofile=icc,
        software="stackrig",
        metadata=None,  # no tifffile JSON in ImageDescription; that tag is the photographer's
        extratags=_tiff_text_tags(exif),
    )


def _tiff_text_tags(exif: bytes | None) -> list[tuple[int, str, int, str, bool]]:
    if exif is None:
        return []
    parsed = _parse_exif(exif)
    tags = []
    for tag in _TIFF_TEXT_TAGS:
        value = parsed.get(tag)
        text = _ascii_text(value) if isinstance(value, str) else ""
        if text.strip():
            tags.append((tag, "s", 0, text, True))
    return tags


def _ascii_text(value: str) -> str:
    """TIFF text must be 7-bit ASCII: fold accents away (Jürgen -> Jurgen), drop the rest.

    Pillow decodes EXIF text as Latin-1, but cameras and editors often store UTF-8 there.
    """
    raw = value.encode("latin-1", "replace")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = value
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _write_png(fh: BinaryIO, *, pixels: np.ndarray, exif: bytes | None, icc: bytes | None) -> None:
    # OpenCV writes 16-bit RGB PNG (Pillow cannot), so metadata chunks are added to its output.
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise ImageWriteError("OpenCV could not encode the PNG")
    png = encoded.tobytes()
    chunks = b""
    if icc:  # profile name, NUL, compression method 0 (zlib), compressed profile
        chunks += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:  # eXIf holds the TIFF structure without the "Exif\0\0" header
        chunks += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER))
    # Both must come before the image data; IHDR is always the first chunk.
    fh.write(png[:_PNG_AFTER_IHDR] + chunks + png[_PNG_AFTER_IHDR:])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _write_jpeg(
    fh: BinaryIO,
    *,
    pixels: np.ndarray,
    exif: bytes | None,
    icc: bytes | None,
    quality: int,
) -> None:
    options: dict[str, Any] = {"quality": quality, "subsampling": 0}
    if exif and len(exif) > _JPEG_MAX_EXIF:
        _log.warning("EXIF block of %d bytes is too large for JPEG; left out", len(exif))
    elif exif:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    Image.fromarray(pixels).save(fh, format="JPEG", **options)
