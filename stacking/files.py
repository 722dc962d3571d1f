"""Writing files so that nothing is ever half-written: no OpenCV, no image libraries.

Every file stackrig writes goes through :func:`stage` + :func:`commit` (or :func:`atomic_write`,
which is both): the data goes to a hidden temp file beside the target, is fsync'd, then renamed
into place and the folder fsync'd. A crash leaves the old file or the new one, never a torn one.
Several outputs staged together are renamed together, so an interrupted run writes none of them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stacking.errors import ImageWriteError, StackingError

TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Staged:
    """A fully written, fsync'd temp file waiting to be renamed onto ``target``."""

    temp: Path
    target: Path

    def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


def temp_path(target: Path) -> Path:
    """A hidden, unique name beside ``target`` (a leading dot: input listings ignore it)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def stage(path: Path, write: Callable[[BinaryIO], object]) -> Staged:
    """Write ``path``'s future content to a temp file beside it and fsync it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path.name}: folder {path.parent} does not exist; create it first")
    temp = temp_path(path)
    try:
        with open(temp, "xb") as fh:  # "x": never clobber; mode follows the umask, unlike mkstemp
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ImageWriteError(f"{path.name}: cannot be written ({exc.strerror or exc})") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Staged(temp, path)


def commit(staged: Iterable[Staged]) -> list[Path]:
    """Rename every staged file into place (the renames take microseconds), then fsync folders."""
    items = list(staged)
    done: list[Path] = []
    try:
        for item in items:
            os.replace(item.temp, item.target)
            done.append(item.target)
    except OSError as exc:
        for item in items[len(done) :]:
            item.discard()
        raise ImageWriteError(
            f"{items[len(done)].target.name}: cannot be written ({exc.strerror or exc})"
        ) from exc
    except BaseException:  # interrupted: no temp file stays behind
        for item in items[len(done) :]:
            item.discard()
        raise
    for folder in {p.parent for p in done}:
        fsync_folder(folder)
    return done


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through a temp file: afterwards it holds the old content or the new."""
    return commit([stage(Path(path), write)])[0]


def write_bytes(path: Path, data: bytes | memoryview) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX only: Windows cannot open a folder)."""
    if os.name != "posix":
        return
    with suppress(OSError):  # some file systems refuse fsync on folders; the data is synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def json_bytes(path: Path, data: object) -> bytes:
    """UTF-8 JSON (indent 2). Names that are not UTF-8 (bytes the OS gave us) are escaped."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ImageWriteError(f"{path.name}: cannot be stored as JSON ({exc})") from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a non-UTF-8 file name: keep it escaped
        return (json.dumps(data, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def write_json(path: str | Path, data: object) -> Path:
    """Write data as JSON atomically; return the path."""
    path = Path(path)
    encoded = json_bytes(path, data)
    return write_bytes(path, encoded)


def read_json(path: str | Path) -> object:
    """Read a UTF-8 JSON file; any problem raises StackingError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise StackingError(f"{path.name}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise StackingError(f"{path.name}: not valid JSON (not UTF-8 text)") from exc
    except OSError as exc:
        raise StackingError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackingError(
            f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix or replace the file"
        ) from exc
