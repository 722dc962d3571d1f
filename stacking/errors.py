"""Errors raised by the stacking package; each message says what happened and what to do."""

from __future__ import annotations

from pathlib import Path


class StackingError(Exception):
    """Base class for every error the stacking package raises on purpose."""


class ImageReadError(StackingError):
    """An input image could not be read (missing, corrupt, truncated, unsupported)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class ImageWriteError(StackingError):
    """An output could not be written."""


class FrameMismatchError(StackingError):
    """A frame does not match the reference frame (size or channels)."""


class NothingToStackError(StackingError):
    """No frame of the stack could be used."""
