"""A capture session's folder: layout, frame names, saving downloads, verifying on resume.

::

    <captures>/<yyyy-mm-dd_hhmmss>_<profile>/
        session.toml        the profile snapshot and the plan, written once at the start
        journal.jsonl       append-only record of the run (rig.session.journal)
        frames/             0007_z+1234.5um.jpg ... (shot number from 1, position, axis)
        frames/.incoming/   where the camera downloads; save_frame renames out of it
        orphans/            leftovers found on resume: partial downloads, unjournaled frames
        rejected/           frames that failed verification (truncated, changed): re-shot
        stack.tif, stack.tif.stack.json, depth.png, preview.jpg

Nothing is ever deleted or overwritten: a file that cannot be used is moved to ``orphans/`` or
``rejected/`` (under a new name where the old one is taken) and reported. No OpenCV here.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import tomli_w

from rig.errors import SessionError
from rig.outputs import StackOutputs
from rig.profiles import Profile, loads_profile, profile_to_dict, safe_name
from rig.session.journal import FrameFile, Journal, SessionState
from stacking import files

FORMAT = 1  # session.toml's stackrig_session: marks a session folder, versions its layout
DEFAULT_FOLDER_TEMPLATE = "{date}_{time}_{profile}"
SESSION_FILE = "session.toml"
JOURNAL_FILE = "journal.jsonl"
_NAME_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}")
_AXIS = re.compile(r"[a-z]{1,8}")


@dataclass(frozen=True)
class SessionFolder:
    path: Path

    @property
    def frames(self) -> Path:
        return self.path / "frames"

    @property
    def incoming(self) -> Path:
        """The camera's download target: hidden inside frames/, same file system, so a save is
        a rename, and a stack of frames/ never sees a half-downloaded file."""
        return self.frames / ".incoming"

    @property
    def orphans(self) -> Path:
        return self.path / "orphans"

    @property
    def rejected(self) -> Path:
        return self.path / "rejected"

    @property
    def session_file(self) -> Path:
        return self.path / SESSION_FILE

    @property
    def journal(self) -> Path:
        return self.path / JOURNAL_FILE

    @property
    def preview(self) -> Path:
        return self.path / "preview.jpg"

    @property
    def outputs(self) -> StackOutputs:
        """``stack.tif`` with its report, ``depth.png`` and its colour rendering."""
        return StackOutputs.beside(self.path / "stack.tif", self.path / "depth.png")

    def frame_path(self, name: str) -> Path:
        return self.frames / name

    @classmethod
    def open(cls, path: Path) -> SessionFolder:
        """An existing session folder, for resume; anything else is refused, saying why."""
        path = Path(path)
        if not path.is_dir():
            raise SessionError(f"{path}: no such folder; give the session folder to resume")
        session = cls(path)
        if not session.session_file.is_file():
            raise SessionError(
                f"{path} is not a capture session folder (no {SESSION_FILE}); give the folder "
                "stackrig capture created, e.g. <captures>/2026-01-31_142501_<profile>"
            )
        read_session_file(session)  # a damaged or foreign session.toml is refused here
        if not session.journal.is_file():
            raise SessionError(f"{path}: no {JOURNAL_FILE}; the session never started a shot")
        for folder in (session.frames, session.incoming):
            folder.mkdir(exist_ok=True)
        return session


def create_session_folder(
    captures_root: Path,
    profile_name: str,
    now: datetime,
    *,
    template: str = DEFAULT_FOLDER_TEMPLATE,
) -> SessionFolder:
    """A new, empty session folder (with ``frames/.incoming/``). An existing folder is never
    reused: ``-2``, ``-3`` ... are added to the name until mkdir succeeds.

    ``template`` is the profile's ``output.folder_template`` (fields profile, date, time).
    """
    fields = {"profile": safe_name(profile_name), "date": now.strftime("%Y-%m-%d")}
    fields["time"] = now.strftime("%H%M%S")
    try:
        name = template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise SessionError(f"folder template {template!r} cannot be filled: {exc}") from None
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise SessionError(f"folder template {template!r} gives {name!r}: not a folder name")
    root = Path(captures_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionError(f"captures folder {root}: cannot create ({exc.strerror})") from exc
    for n in range(1, 10_000):
        path = root / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()  # atomic: fails when the name is taken, so two runs never share
        except FileExistsError:
            continue
        except OSError as exc:
            raise SessionError(f"{path}: cannot create ({exc.strerror}); check {root}") from exc
        session = SessionFolder(path)
        session.incoming.mkdir(parents=True)
        for folder in (session.frames, path, root):
            files.fsync_folder(folder)
        return session
    raise SessionError(f"{root}: 10000 sessions named {name}; choose another captures folder")


# -- session.toml --------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFile:
    """session.toml as read back: the profile table and the plan as they were given."""

    profile_table: dict[str, Any]
    plan: dict[str, Any]
    created: str

    def profile(self) -> Profile:
        """The profile snapshot, parsed (and migrated) like any profile file."""
        text = tomli_w.dumps(self.profile_table)
        return loads_profile(text, f"{SESSION_FILE} [profile]").profile


def write_session_file(
    session: SessionFolder, profile: Profile, plan: Mapping[str, Any], now: datetime
) -> Path:
    """Write session.toml once (never over an existing one). ``plan`` is any TOML-able mapping;
    keys whose value is None are left out (TOML has no null)."""
    data = {
        "stackrig_session": FORMAT,
        "created": now.isoformat(timespec="seconds"),
        "plan": _without_none(dict(plan)),
        "profile": profile_to_dict(profile),
    }
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError) as exc:
        raise SessionError(f"the plan cannot be stored in {SESSION_FILE}: {exc}") from exc
    target = session.session_file
    if target.exists():
        raise SessionError(f"{target} exists: a session folder's plan is written only once")
    staged = files.stage(target, lambda fh: fh.write(text.encode("utf-8")))
    _place([(staged.temp, target)])  # no-replace, unlike files.commit
    return target


def read_session_file(session: SessionFolder) -> SessionFile:
    path = session.session_file
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SessionError(f"{path}: cannot be read ({exc}); the session cannot resume") from exc
    if data.get("stackrig_session") != FORMAT:
        raise SessionError(
            f"{path}: stackrig_session = {data.get('stackrig_session')!r}, this stackrig reads "
            f"{FORMAT}; not a session of this stackrig"
        )
    profile, plan = data.get("profile"), data.get("plan")
    if not isinstance(profile, dict) or not isinstance(plan, dict):
        raise SessionError(f"{path}: no [profile] or no [plan] table; the file was edited")
    return SessionFile(profile, plan, str(data.get("created", "")))


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value]
    return value


# -- frames --------------------------------------------------------------------------------


def frame_name(index: int, position_um: float, axis: str = "z", ext: str = ".jpg") -> str:
    """``0007_z+1234.5um.jpg``: shot number from 1 (4 digits, more past 9999), the signed
    position to at most 3 decimals (at least one), the extension lowercased. Files of one shot
    (RAW+JPEG) share the stem."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise ValueError(f"shot index {index!r}: must be a whole number from 1")
    if not math.isfinite(position_um):
        raise ValueError(f"position {position_um!r} um: must be a finite number")
    if not _AXIS.fullmatch(axis):
        raise ValueError(f"axis {axis!r}: must be a few lowercase letters (x, y, z, lens)")
    if not _NAME_EXT.fullmatch(ext):
        raise ValueError(f"extension {ext!r}: must be a dot and up to 8 letters or digits")
    text = f"{position_um:+.3f}".rstrip("0")
    text = text + "0" if text.endswith(".") else text
    if text == "-0.0":  # -0.0004 rounds to zero: the sign would mislead
        text = "+0.0"
    return f"{index:04d}_{axis}{text}um{ext.lower()}"


def frame_index(path: Path) -> int:
    """The shot number a frame's name starts with (see :func:`frame_name`)."""
    return int(path.name.split("_", 1)[0])


@dataclass(frozen=True)
class SavedFile:
    """A frame file on disk under its final name, with what the journal records of it."""

    record: FrameFile
    path: Path


def save_frame(
    session: SessionFolder,
    index: int,
    position_um: float,
    downloaded: Iterable[Path],
    *,
    axis: str = "z",
) -> list[SavedFile]:
    """Move one shot's downloaded files into frames/ under their final names, fsync them and
    the folders, and hash them. Then (not before) journal them with :func:`journal_saved`.

    A target name that exists already is a bug (a shot saved twice): SessionError, before any
    file was moved.
    """
    sources = [Path(p) for p in downloaded]
    if not sources:
        raise SessionError(f"shot {index}: the camera delivered no file to save")
    plan: list[tuple[Path, Path]] = []
    for source in sources:
        if not source.is_file():
            raise SessionError(f"shot {index}: downloaded file {source} is missing")
        try:
            name = frame_name(index, position_um, axis, source.suffix or ".bin")
        except ValueError as exc:
            raise SessionError(f"shot {index}: {source.name} cannot be named: {exc}") from None
        taken = {t.name for _, t in plan}
        if name in taken:  # two files of one type in one shot (rare): keep both
            stem, ext = os.path.splitext(name)
            name = next(f"{stem}-{n}{ext}" for n in range(2, 99) if f"{stem}-{n}{ext}" not in taken)
        plan.append((source, session.frames / name))
    for _, target in plan:
        if target.exists() or target.is_symlink():
            raise SessionError(
                f"shot {index}: {target.name} is already in {session.frames}; a shot must not be "
                "saved twice (this is a bug in stackrig; nothing was moved)"
            )
    _place(plan)
    saved = []
    for _, target in plan:
        size, digest = hash_file(target, sync=True)
        saved.append(SavedFile(FrameFile(index, target.name, size, digest), target))
    return saved


def journal_saved(journal: Journal, saved: list[SavedFile]) -> None:
    """One file_saved event per file of the shot, each saying how many files the shot has."""
    for item in saved:
        r = item.record
        journal.append(
            "file_saved", index=r.index, name=r.name, size=r.size, sha256=r.sha256, of=len(saved)
        )


def hash_file(path: Path, *, sync: bool = False) -> tuple[int, str]:
    """(size, sha256 hex) of the bytes on disk; ``sync`` fsyncs the file first."""
    with open(path, "rb") as fh:
        if sync:
            os.fsync(fh.fileno())
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        return fh.tell(), digest


def _place(moves: list[tuple[Path, Path]]) -> None:
    """Rename each source onto its target, never replacing a file, then fsync the folders."""
    for source, target in moves:
        try:
            _move_no_replace(source, target)
        except FileExistsError:
            raise SessionError(f"{target} exists; stackrig never writes over a file") from None
        except OSError as exc:
            raise SessionError(
                f"cannot move {source.name} to {target.parent} ({exc.strerror or exc}); if the "
                "disk is full, free space and resume the session"
            ) from exc
    for folder in {p.parent for pair in moves for p in pair}:
        files.fsync_folder(folder)


def _move_no_replace(source: Path, target: Path) -> None:
    # A hard link fails if the target exists (rename would silently replace it); file systems
    # without links (FAT, exFAT cards) fall back to check-then-rename, safe with one writer.
    if source.is_file() and not source.is_symlink():
        try:
            os.link(source, target)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
        else:
            os.unlink(source)
            return
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, "exists", str(target))
    os.rename(source, target)


def _set_aside(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under a free, visible name (a leading dot dropped)."""
    folder.mkdir(exist_ok=True)
    name = path.name.lstrip(".") or "unnamed"
    target = folder / name
    stem, ext = os.path.splitext(name)
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{stem}-{n}{ext}"
    _place([(path, target)])
    return target


# -- resume --------------------------------------------------------------------------------


class Verified(NamedTuple):
    good: dict[int, list[Path]]  # index -> the shot's files, all as journaled, index order
    bad: dict[int, str]  # index -> why it must be re-shot


def verify_frames(session: SessionFolder, state: SessionState) -> Verified:
    """Re-check every file the journal says was saved: present, same size, same sha256. A shot
    with any file missing, short, changed, or never journaled at all (a crash between RAW and
    JPEG) is bad. Nothing is moved: :func:`recover` does that."""
    good: dict[int, list[Path]] = {}
    bad: dict[int, str] = {}
    for index, records in state.incomplete.items():
        bad[index] = f"{len(records)} of {state.expected.get(index, 1)} files were saved"
    for index, records in state.saved.items():
        problems = [p for r in records if (p := _check(session.frame_path(r.name), r))]
        if problems:
            bad[index] = "; ".join(problems)
        else:
            good[index] = [session.frame_path(r.name) for r in records]
    return Verified(good, dict(sorted(bad.items())))


def _check(path: Path, record: FrameFile) -> str | None:
    try:
        size = path.stat().st_size
        if size != record.size:
            return f"{record.name} has {size} bytes, {record.size} were saved"
        if hash_file(path)[1] != record.sha256:
            return f"{record.name} changed since it was saved (sha256 differs)"
    except FileNotFoundError:
        return f"{record.name} is missing"
    except OSError as exc:
        return f"{record.name} cannot be read ({exc.strerror or exc})"
    return None


def sweep_incoming(session: SessionFolder) -> list[Path]:
    """Move whatever is left in frames/.incoming/ (a download a crash or a camera error cut
    short, a file never saved) to orphans/; returns where each went. Call it before a shot is
    retried and on resume, so a re-shot never meets an old file."""
    if not session.incoming.is_dir():
        return []
    return [_set_aside(p, session.orphans) for p in sorted(session.incoming.iterdir())]


@dataclass
class Recovery:
    """What :func:`recover` found and did; ``state`` is after the rejections it journaled."""

    state: SessionState
    good: dict[int, list[Path]]
    bad: dict[int, str]
    orphans: list[Path] = field(default_factory=list)  # where each leftover went
    rejected: list[Path] = field(default_factory=list)  # where each bad frame's file went
    torn_tail: Path | None = None  # where a torn final journal line was kept

    def summary(self) -> str:
        parts = [f"{len(self.good)} shots verified on disk"]
        if self.bad:
            parts.append(f"{len(self.bad)} to re-shoot ({len(self.rejected)} files in rejected/)")
        if self.orphans:
            parts.append(f"{len(self.orphans)} leftover files kept in orphans/")
        return "; ".join(parts)


def recover(session: SessionFolder, journal: Journal) -> Recovery:
    """Bring a session folder back in line with its journal before resuming.

    Leftover downloads go to orphans/; frames failing verification go to rejected/ and a
    ``frame_rejected`` is journaled for each (so :func:`~rig.session.journal.next_missing`
    re-shoots them); files in frames/ that the journal does not know (a crash after the rename,
    before the journal line) go to orphans/. Afterwards frames/ holds exactly the good frames.
    """
    orphans = sweep_incoming(session)
    checked = verify_frames(session, journal.state())
    rejected = []
    for index, reason in checked.bad.items():
        for record in journal.state().files.get(index, {}).values():
            path = session.frame_path(record.name)
            if path.exists() or path.is_symlink():
                rejected.append(_set_aside(path, session.rejected))
        journal.append("frame_rejected", index=index, reason=reason)
    keep = {p.name for paths in checked.good.values() for p in paths}
    for path in sorted(session.frames.iterdir()):
        if path.name not in keep and path != session.incoming:
            orphans.append(_set_aside(path, session.orphans))
    return Recovery(
        journal.state(), checked.good, checked.bad, orphans, rejected, journal.torn_tail
    )
