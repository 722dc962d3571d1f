"""Finding the stacks of a batch: session folders and folders of frames below the roots, and
flat folders split into stacks (a fixed size, a file-name pattern, gaps in capture time).

Read only: finding never writes. The frames of a stack are named one by one, in the order the
stacker takes them (natural name order), so a split part is stacked exactly as listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rig.errors import BatchError
from rig.outputs import earlier_results
from rig.session.folder import SESSION_FILE
from stacking.io import IMAGE_SUFFIXES, natural_key

_EXIF_IFD, _DATETIME, _ORIGINAL, _SUBSEC = 0x8769, 0x0132, 0x9003, 0x9291
_SESSION_PARTS = ("frames", "orphans", "rejected")  # a session's own folders: not stacks
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class Split:
    """How a flat folder holding several stacks one after another is cut into stacks."""

    every: int | None = None  # frames per stack
    pattern: str | None = None  # regex: frames whose match (group 1 if any) is equal
    gap_s: float | None = None  # a pause in EXIF capture time longer than this starts a stack

    def __post_init__(self) -> None:
        given = [v for v in (self.every, self.pattern, self.gap_s) if v is not None]
        if len(given) > 1:
            raise BatchError(
                "give one way to split (--split-every, --split-pattern or --split-gap)"
            )
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise BatchError(
                    f"--split-pattern {self.pattern!r} is not a regex ({exc})"
                ) from None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.every, self.pattern, self.gap_s))


@dataclass(frozen=True)
class Stack:
    """One stack to build: its frames and where it came from."""

    root: Path  # the root it was found under
    folder: Path  # the session folder, or the folder holding the frames
    frames: tuple[Path, ...]
    session: bool = False
    label: str | None = None  # a split part's label (part03, or the pattern's match)

    @property
    def name(self) -> str:
        """``ROOTNAME/relative/folder[/label]``: unique within a batch, the result's place."""
        rel = self.folder.relative_to(self.root)
        parts = [self.root.resolve().name or "root", *rel.parts]
        return "/".join([*parts, self.label] if self.label else parts)


@dataclass
class Found:
    stacks: list[Stack] = field(default_factory=list)
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # files not stacked, and why
    notes: list[str] = field(default_factory=list)  # folders kept whole, and why


def find_stacks(
    roots: Sequence[Path], split: Split = Split(), exclude: Path | None = None
) -> Found:
    """Every stack below ``roots`` (``exclude``: the output root, when it lies below one)."""
    found = Found()
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None
    for root in roots:
        if not root.is_dir():
            raise BatchError(f"{root}: no such folder; give folders that hold stacks or sessions")
        for folder in _folders(root, skip):
            real = folder.resolve()
            if real in seen:  # reached again through an overlapping root or a link
                continue
            seen.add(real)
            if (folder / SESSION_FILE).is_file() and (folder / "frames").is_dir():
                frames = _frames(folder / "frames")
                if frames:
                    found.stacks.append(Stack(root, folder, tuple(frames), session=True))
                continue
            frames = _frames(folder)
            if frames:
                _split_into(found, Stack(root, folder, tuple(frames)), split)
    return found


def session_stack(path: Path) -> Stack:
    """A capture session folder as one stack (its frames/; none yet: an empty stack)."""
    frames = _frames(path / "frames") if (path / "frames").is_dir() else []
    return Stack(path.parent, path, tuple(frames), session=True)


def _folders(root: Path, skip: Path | None) -> list[Path]:
    """``root`` and the folders below it, in natural order; hidden ones, a session's own
    subfolders and the output root are not entered."""
    out: list[Path] = []
    for here, dirs, _files in os.walk(root, onerror=_walk_error):
        path = Path(here)
        if skip is not None and path.resolve() == skip:
            dirs[:] = []
            continue
        out.append(path)
        session = (path / SESSION_FILE).is_file()
        dirs[:] = sorted(
            (d for d in dirs if not d.startswith(".") and not (session and d in _SESSION_PARTS)),
            key=natural_key,
        )
    return out


def _walk_error(exc: OSError) -> None:
    raise BatchError(
        f"{exc.filename}: cannot be listed ({exc.strerror or exc}); fix its permissions"
    )


def _frames(folder: Path) -> list[Path]:
    """The frames directly in ``folder``: images, not hidden, not earlier stackrig results."""
    try:
        names = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise BatchError(f"{folder}: cannot be listed ({exc.strerror or exc})") from None
    images = [p for p in names if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not images:
        return []
    results = earlier_results([folder])
    return sorted((p for p in images if p.resolve() not in results), key=natural_key)


def _split_into(found: Found, stack: Stack, split: Split) -> None:
    if not split.active:
        found.stacks.append(stack)
        return
    if split.every is not None:
        groups = _by_count(stack.frames, split.every)
    elif split.pattern is not None:
        groups = _by_pattern(found, stack.frames, re.compile(split.pattern))
    else:
        assert split.gap_s is not None
        try:
            capture_time(stack.frames[0])
        except BatchError:  # a folder without capture times is not a timed series: kept whole
            found.notes.append(f"{stack.folder}: no EXIF capture times, kept as one stack")
            found.stacks.append(stack)
            return
        groups = _by_gap(stack.frames, split.gap_s)
    if len(groups) == 1 and split.pattern is None:
        found.stacks.append(stack)  # nothing to split: the folder is one stack
        return
    for label, frames in groups:
        found.stacks.append(Stack(stack.root, stack.folder, tuple(frames), label=label))


def _numbered(groups: list[list[Path]]) -> list[tuple[str, list[Path]]]:
    width = max(2, len(str(len(groups))))
    return [(f"part{n:0{width}d}", g) for n, g in enumerate(groups, 1)]


def _by_count(frames: Sequence[Path], every: int) -> list[tuple[str, list[Path]]]:
    return _numbered([list(frames[i : i + every]) for i in range(0, len(frames), every)])


def _by_pattern(
    found: Found, frames: Sequence[Path], pattern: re.Pattern[str]
) -> list[tuple[str, list[Path]]]:
    groups: dict[str, list[Path]] = {}
    for path in frames:
        match = pattern.search(path.name)
        if match is None:
            found.left_out.append(
                (path, f"its name does not match --split-pattern {pattern.pattern!r}")
            )
            continue
        key = match.group(1) if pattern.groups else match.group(0)
        groups.setdefault(_LABEL_UNSAFE.sub("_", key).strip("._") or "match", []).append(path)
    return list(groups.items())


def _by_gap(frames: Sequence[Path], gap_s: float) -> list[tuple[str, list[Path]]]:
    groups: list[list[Path]] = []
    last: datetime | None = None
    for path in frames:
        taken = capture_time(path)
        if last is None or (taken - last).total_seconds() > gap_s:
            groups.append([])
        groups[-1].append(path)
        last = taken
    return _numbered(groups)


def capture_time(path: Path) -> datetime:
    """When the frame was taken, from its EXIF (DateTimeOriginal + sub-seconds, else DateTime)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
    except Exception as exc:  # Pillow raises many types for files it cannot parse
        raise BatchError(
            f"{path}: its capture time cannot be read ({exc}); split with --split-every or "
            "--split-pattern instead"
        ) from None
    sub = exif.get_ifd(_EXIF_IFD)
    text = sub.get(_ORIGINAL) or exif.get(_DATETIME)
    try:
        taken = datetime.strptime(str(text).strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        raise BatchError(
            f"{path}: no EXIF capture time (DateTimeOriginal); split with --split-every or "
            "--split-pattern instead"
        ) from None
    fraction = str(sub.get(_SUBSEC) or "").strip()
    if fraction.isdigit():
        taken = taken.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return taken
