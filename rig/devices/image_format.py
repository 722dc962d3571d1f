"""What a camera's image-format and capture-target settings mean, read from their text.

Pure (no libgphoto2): the camera uses it to know how many files a shot makes, the planner to
estimate the disk a shoot needs. Values as libgphoto2 names them (camlibs/ptp2/config.c):
"RAW + L" (Canon EOS since libgphoto2 2.5.32), "RAW + Large Fine JPEG" (before), "NEF+Fine",
"RAW+JPEG (X.Fine)", "RAW + JPEG Fine" (Fuji), "Large Fine JPEG+RAW" (Olympus), "RAW & JPEG"
(Sony PC save), "TIFF (RGB)" (Nikon).
"""

from __future__ import annotations

import re

FORMAT_KEYS = ("imageformat", "imagequality")  # Canon, Fuji, Olympus / Nikon, Sony

_PARTS = re.compile(r"\s*[+&]\s*")
_RAW = re.compile(r"\b(?:[cms]?raw|nef)\b")
_TIFF = re.compile(r"\btiff?\b")
_IMAGE = re.compile(
    r"\b(?:jpe?g|heif|heic|fine|normal|basic|economy|superfine|standard|std|light"
    r"|x\.fine|large|medium|small|smaller|tiny)\b"
)
_CANON_SIZE = re.compile(r"c?[lms]\d?")  # Canon EOS JPEG sizes: L, M, S, cL, M1, S2, cS3 ...


def format_kinds(image_format: str) -> list[str] | None:
    """The files one shot makes in this image format, in order: "raw", "tiff" or "jpeg" each
    (RAW+JPEG: ["raw", "jpeg"]); None when any part of the value is not recognisable (an
    unknown code such as Panasonic's numbers or a Canon "0x0c + 0x44")."""
    text = image_format.strip().lower().replace("*", "")  # Nikon's "JPEG Fine*" (optimal)
    text = re.sub(r"\bonly\b", "", text)  # Sony's "JPEG Only", "RAW Only"
    parts = [p.strip() for p in _PARTS.split(text) if p.strip()]
    kinds = []
    for part in parts:
        if _RAW.search(part):
            kinds.append("raw")
        elif _TIFF.search(part):
            kinds.append("tiff")
        elif _IMAGE.search(part) or _CANON_SIZE.fullmatch(part):
            kinds.append("jpeg")
        else:
            return None
    return kinds or None


def format_file_count(image_format: str) -> int | None:
    """How many files one shot makes in this image format (RAW+JPEG: 2), None if unclear:
    the camera then waits for the camera to fall quiet instead of risking a shot cut short."""
    kinds = format_kinds(image_format)
    return None if kinds is None else len(kinds)


def target_is_ram(capture_target: str) -> bool | None:
    """True for the camera's internal RAM ("Internal RAM", Sony's "sdram"), False when the
    shot is also stored on a card ("Memory card", "card", "card+sdram"), None if unclear."""
    text = capture_target.strip().lower()
    if "card" in text:
        return False
    if re.search(r"\bram\b|sdram", text):
        return True
    return None
