"""What happened to each frame, and the stack report (``.stack.json``) written beside a result.

The one place that turns a :class:`FrameReport` and the :class:`Coverage` verdict into JSON and
back. Reading validates every field, so a damaged or hand-edited report is an error that names
the frame and the key, never a traceback or a wrong re-stack. No OpenCV here: the session and
the TUI read reports too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from stacking.errors import StackingError

REPORT_SUFFIX = ".stack.json"


@dataclass
class FrameReport:
    index: int
    name: str
    accepted: bool
    reason: str | None
    transform: list[list[float]]  # 3x3, reference -> frame pixels
    gain: list[float]  # per channel, linear light, applied to match the reference exposure
    offset: list[float]  # per channel, linear light, added after the gain
    confidence: float
    method: str
    sharpness: float  # mean focus measure of the frame
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: object, source: str = "report") -> FrameReport:
        """A report read back from JSON; StackingError names what is wrong."""
        if not isinstance(entry, dict):
            raise StackingError(f"{source}: a frame entry is {_show(entry)}, not a table")
        where = f"{source}: frame {_show(entry.get('name', '?'))}"
        known = {f.name for f in fields(cls)}
        missing = sorted(known - entry.keys())
        if missing:
            raise StackingError(f"{where}: missing {', '.join(missing)}")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise StackingError(f"{where}: unknown key {', '.join(map(str, unknown))}")
        get = _Reader(entry, where)
        return cls(
            index=get.integer("index"),
            name=get.text("name"),
            accepted=get.flag("accepted"),
            reason=get.text("reason", optional=True),
            transform=get.matrix("transform"),
            gain=get.numbers("gain", positive=True),
            offset=get.numbers("offset"),
            confidence=get.number("confidence"),
            method=get.text("method"),
            sharpness=get.number("sharpness"),
            seconds=get.number("seconds"),
        )


@dataclass(frozen=True)
class Coverage:
    """Does the stack reach the subject's front and back (see :mod:`stacking.coverage`)?

    "first" and "last" are the ends of the acquisition order: the first and the last frame
    fused, in the order they were added (the capture plan's order).
    """

    frames: int  # frames fused and judged
    textured: float  # fraction of the image judged: with detail, and covered by every frame
    first_share: float  # share of that detail the first frame is the sharpest for
    last_share: float  # ... and the last frame
    extend_first: int  # about how many steps to add before the first frame; 0: that end is fine
    extend_last: int  # ... after the last frame
    judged: bool  # False: too few frames or too little detail to tell (the verdict says which)
    verdict: str  # one sentence for the operator

    @property
    def covered(self) -> bool:
        """Judged, and neither end stops short."""
        return self.judged and not self.extend_first and not self.extend_last

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: object, source: str = "report") -> Coverage:
        """A coverage verdict read back from JSON; StackingError names what is wrong."""
        if not isinstance(entry, dict):
            raise StackingError(f"{source}: coverage is {_show(entry)}, not a table")
        where = f"{source}: coverage"
        known = {f.name for f in fields(cls)}
        missing = sorted(known - entry.keys())
        if missing:
            raise StackingError(f"{where}: missing {', '.join(missing)}")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise StackingError(f"{where}: unknown key {', '.join(map(str, unknown))}")
        get = _Reader(entry, where)
        return cls(
            frames=get.integer("frames"),
            textured=get.fraction("textured"),
            first_share=get.fraction("first_share"),
            last_share=get.fraction("last_share"),
            extend_first=get.integer("extend_first"),
            extend_last=get.integer("extend_last"),
            judged=get.flag("judged"),
            verdict=get.text("verdict"),
        )


def stack_coverage(document: object, source: str) -> Coverage | None:
    """The coverage verdict of a stack report document; None in a report written before it."""
    if not isinstance(document, dict) or document.get("coverage") is None:
        return None
    return Coverage.from_dict(document["coverage"], source)


def frame_reports(document: object, source: str) -> list[FrameReport]:
    """The frame reports of a stack report document (as read from JSON)."""
    frames = document.get("frames") if isinstance(document, dict) else None
    if not isinstance(frames, list):
        raise StackingError(f"{source}: not a stackrig report (no 'frames' list)")
    return [FrameReport.from_dict(entry, source) for entry in frames]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
    """Typed access to one JSON table, each failure naming the key and the value found."""

    def __init__(self, entry: dict[str, Any], where: str) -> None:
        self.entry = entry
        self.where = where

    def _bad(self, key: str, what: str) -> StackingError:
        return StackingError(
            f"{self.where}: {key} = {_show(self.entry[key])}: must be {what}; the report is "
            "damaged: stack again without reusing it"
        )

    def number(self, key: str) -> float:
        value = self.entry[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._bad(key, "a finite number")
        return float(value)

    def fraction(self, key: str) -> float:
        value = self.number(key)
        if not 0.0 <= value <= 1.0:
            raise self._bad(key, "a number from 0 to 1")
        return value

    def integer(self, key: str) -> int:
        value = self.entry[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._bad(key, "a whole number >= 0")
        return value

    def flag(self, key: str) -> bool:
        if not isinstance(self.entry[key], bool):
            raise self._bad(key, "true or false")
        return bool(self.entry[key])

    def text(self, key: str, optional: bool = False) -> Any:
        value = self.entry[key]
        if (value is None and optional) or isinstance(value, str):
            return value
        raise self._bad(key, "text" + (" or null" if optional else ""))

    def numbers(self, key: str, positive: bool = False) -> list[float]:
        value = self.entry[key]
        ok = isinstance(value, list) and len(value) == 3 and all(_finite(v) for v in value)
        if not ok or (positive and min(value) <= 0):
            raise self._bad(key, "a list of 3 finite numbers" + (" > 0" if positive else ""))
        return [float(v) for v in value]

    def matrix(self, key: str) -> list[list[float]]:
        value = self.entry[key]
        rows = isinstance(value, list) and len(value) == 3
        if not rows or not all(isinstance(r, list) and len(r) == 3 for r in value):
            raise self._bad(key, "3 rows of 3 numbers")
        if not all(_finite(v) for r in value for v in r):
            raise self._bad(key, "3 rows of 3 finite numbers")
        if abs(_det3(value)) < 1e-9:
            raise self._bad(key, "an invertible transform")
        return [[float(v) for v in r] for r in value]


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _det3(m: list[list[float]]) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )
