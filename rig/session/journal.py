"""The capture session's journal: append-only JSONL, one event a line, each line on disk before
:meth:`Journal.append` returns. No devices, no threads of its own, no OpenCV.

The journal is the session's memory: after a crash, kill or power loss, :func:`replay` of what
:func:`read_journal` finds says which shots are safely on disk, and :func:`next_missing` which
planned shots are still to take. Shot indices count from 1 (the shot number, as in the profile's
``{n}`` and in frame names ``0001_...``); ``plan_positions[index - 1]`` is shot ``index``.

Every line is ``{"type": ..., "seq": n, "time": wall-clock s, ...fields}``; ``seq`` increases by
one per event across the whole life of the session (a resume continues it).

Torn lines: only the last line can be torn (each earlier one was fsync'd before the next was
written), so a final line without its newline is an event that never happened and is ignored;
any other bad line means the file was damaged, and reading refuses, naming the line.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.errors import SessionError
from stacking import files
from stacking.errors import StackingError

CHOICES = ("retry", "skip", "abort")
DECIDED_BY = ("operator", "policy")
POSITION_TOLERANCE_UM = 1e-3  # a resumed plan must put each done shot where the journal says

_SHA256 = re.compile(r"[0-9a-f]{64}")


class JournalError(SessionError):
    """The journal cannot be read or written."""


# -- what each event holds -----------------------------------------------------------------
# A field checker returns None when the value is fine, else what is wrong with it.


def _index(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
    return None if ok else "a shot number from 1"


def _maybe_index(v: Any) -> str | None:
    return None if v is None else _index(v)


def _count(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return None if ok else "a whole number >= 0"


def _um(v: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return None if ok else "a finite number of micrometres"


def _positions(v: Any) -> str | None:
    ok = isinstance(v, list) and bool(v) and all(_um(p) is None for p in v)
    return None if ok else "a list of positions in micrometres"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "text"


def _file_name(v: Any) -> str | None:
    # A name joined to frames/: a tampered journal must not point outside the session folder.
    ok = isinstance(v, str) and v not in ("", ".", "..") and not v.startswith(".")
    return None if ok and "/" not in v and "\\" not in v else "a plain file name"


def _digest(v: Any) -> str | None:
    return None if isinstance(v, str) and _SHA256.fullmatch(v) else "64 lowercase hex digits"


def _table(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a JSON object"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else "one of " + ", ".join(choices)


_Fields = dict[str, Callable[[Any], str | None]]

# type -> (required fields, optional fields). Extra fields are kept (a later stackrig may add
# some); an unknown type is kept by the reader and ignored by replay, refused by append.
EVENTS: dict[str, tuple[_Fields, _Fields]] = {
    "session_started": ({"plan": _table}, {}),
    "shot_requested": ({"index": _index, "position_um": _um}, {}),
    "position_reached": ({"index": _index, "position_um": _um}, {}),
    "file_saved": (
        {"index": _index, "name": _file_name, "size": _count, "sha256": _digest},
        {"of": _index},  # how many files this shot has (RAW+JPEG: 2); absent: 1
    ),
    "frame_stacked": ({"index": _index, "name": _file_name}, {}),
    "frame_rejected": ({"index": _index, "reason": _text}, {}),  # verified bad: to re-shoot
    "fault": ({"index": _maybe_index, "kind": _text, "message": _text}, {}),
    "decision": ({"index": _index, "choice": _one_of(CHOICES), "by": _one_of(DECIDED_BY)}, {}),
    "rail_reconnected": ({"index": _index, "message": _text}, {}),  # after a lost link
    # more shots beyond one end of the plan (the coverage verdict): indices continue after
    # the last planned one, in the order given
    "session_extended": ({"positions_um": _positions, "end": _one_of(("first", "last"))}, {}),
    "session_paused": ({}, {}),
    "session_resumed": ({}, {}),
    "session_finished": ({"outcome": _text}, {}),
}


def _problem(kind: str, data: Mapping[str, Any]) -> str | None:
    """What is wrong with an event of a known ``kind``, or None."""
    required, optional = EVENTS[kind]
    for key in required:
        if key not in data:
            return f"{kind} has no {key!r}"
    for key, check in (required | optional).items():
        if key in data and (wrong := check(data[key])) is not None:
            return f"{kind}: {key} = {data[key]!r} is not {wrong}"
    return None


@dataclass(frozen=True)
class Event:
    """One journal line. ``data`` holds the event's own fields (``event["index"]`` reads one)."""

    type: str
    seq: int
    time: float
    data: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def to_line(self) -> bytes:
        record = {"type": self.type, "seq": self.seq, "time": self.time, **self.data}
        try:  # ASCII, compact, no NaN: any JSON reader takes it, one event a line
            text = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise JournalError(f"{self.type} event cannot be stored as JSON: {exc}") from exc
        return text.encode("ascii") + b"\n"


def _event_from(record: Any) -> Event:
    """A parsed line as an Event; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    kind, seq, when = record.pop("type", None), record.pop("seq", None), record.pop("time", None)
    if not isinstance(kind, str):
        raise ValueError("no event type")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError(f"{kind}: seq = {seq!r} is not a whole number >= 1")
    if _um(when) is not None:
        raise ValueError(f"{kind}: time = {when!r} is not a number")
    if kind in EVENTS and (wrong := _problem(kind, record)) is not None:
        raise ValueError(wrong)
    return Event(kind, seq, float(when), record)


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contents:
    events: list[Event]
    torn_tail: bytes  # an incomplete final line (a crash mid-write), ignored; b"" when none
    good_bytes: int  # length of the file up to the end of the last complete line


def scan_journal(path: Path) -> Contents:
    """Every complete event, and the torn final line if any. A damaged line raises."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"{path}: no journal there; is this a capture session folder?") from None
    except OSError as exc:
        raise JournalError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
    events: list[Event] = []
    for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        try:
            event = _event_from(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise _damaged(path, number, str(exc)) from None
        if events and event.seq <= events[-1].seq:
            why = f"seq {event.seq} after seq {events[-1].seq} (two writers, or edited)"
            raise _damaged(path, number, why)
        events.append(event)
    return Contents(events, data[end:], end)


def _damaged(path: Path, number: int, why: str) -> JournalError:
    return JournalError(
        f"{path}: line {number} is damaged ({why}); the journal was changed after it was "
        "written. The frames are untouched: restore the journal from a backup, or start a new "
        "session"
    )


def read_journal(path: Path) -> list[Event]:
    """The journal's events; an incomplete final line (a crash mid-write) is ignored."""
    return scan_journal(path).events


# -- writing -------------------------------------------------------------------------------


class Journal:
    """The open journal of one session. :meth:`append` is safe from several threads."""

    def __init__(self, path: Path, fd: int, contents: Contents, clock: Callable[[], float]) -> None:
        self.path = path
        self._fd = fd
        self._events = list(contents.events)
        self._size = contents.good_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.torn_tail: Path | None = None  # where resume kept a torn final line

    @classmethod
    def create(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Journal:
        """A new, empty journal; an existing file is never reused."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise JournalError(f"{path} exists: resume that session instead") from None
        except OSError as exc:
            raise JournalError(f"{path}: cannot be created ({exc.strerror or exc})") from exc
        files.fsync_folder(path.parent)  # the journal's name survives a power cut
        return cls(path, fd, Contents([], b"", 0), clock)

    @classmethod
    def resume(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Journal:
        """Open an existing journal to append to; its events are read (and checked) first.

        A torn final line is copied to ``journal.jsonl.torn-N`` (nothing is thrown away) and cut
        from the journal, so the next event starts on a line of its own.
        """
        path = Path(path)
        contents = scan_journal(path)
        kept = None
        if contents.torn_tail:
            kept = _free_name(path.with_name(path.name + ".torn"))
            try:
                files.write_bytes(kept, contents.torn_tail)
            except StackingError as exc:
                raise JournalError(f"{path}: cannot keep its torn last line: {exc}") from exc
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            if kept is not None:
                os.ftruncate(fd, contents.good_bytes)
                os.fsync(fd)
        except OSError as exc:
            raise JournalError(f"{path}: cannot be opened ({exc.strerror or exc})") from exc
        journal = cls(path, fd, contents, clock)
        journal.torn_tail = kept
        return journal

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def state(self) -> SessionState:
        return replay(self.events)

    def append(self, type: str, /, **fields: Any) -> Event:
        """Write one event and fsync it; returns the event once it is on disk."""
        if type not in EVENTS:
            raise JournalError(f"unknown journal event {type!r}; known: {', '.join(EVENTS)}")
        if (wrong := _problem(type, fields)) is not None:
            raise JournalError(f"journal event not written: {wrong}")
        with self._lock:
            seq = self._events[-1].seq + 1 if self._events else 1
            event = Event(type, seq, self._clock(), dict(fields))
            line, before = event.to_line(), self._size
            try:
                self._write(line)
            except (KeyboardInterrupt, SystemExit):
                # Ctrl-C mid-append: a whole line on disk is an event (the next one must
                # follow its seq); a partial one is cut.
                if os.fstat(self._fd).st_size == before + len(line):
                    self._size = before + len(line)
                    self._events.append(event)
                else:
                    with suppress(OSError):
                        os.ftruncate(self._fd, before)
                    self._size = before
                raise
            self._events.append(event)
        return event

    def _write(self, line: bytes) -> None:
        if self._fd < 0:
            raise JournalError(f"{self.path}: the journal is closed")
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            # Cut the partial line, so the next append does not glue onto it (if that fails
            # too, the reader still ignores a torn last line).
            with suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise JournalError(
                f"{self.path}: cannot write the journal ({exc.strerror or exc}); if the disk is "
                "full, free space, then continue with stackrig capture --resume "
                f"{self.path.parent}"
            ) from exc
        self._size += len(line)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_name(path: Path) -> Path:
    """``path-1``, ``path-2``, ...: the first that does not exist."""
    n = 1
    while (candidate := path.with_name(f"{path.name}-{n}")).exists():
        n += 1
    return candidate


# -- replay --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameFile:
    """One file of a shot, as journaled: ``frames/<name>`` should have this size and hash."""

    index: int
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Fault:
    seq: int
    index: int | None
    kind: str
    message: str


@dataclass(frozen=True)
class Decision:
    seq: int
    index: int
    choice: str
    by: str


@dataclass
class SessionState:
    """What the journal says happened. Nothing here was checked against the disk: see
    :func:`rig.session.folder.verify_frames`."""

    plan: dict[str, Any] | None = None  # the plan summary of the first session_started
    extended: list[float] = field(default_factory=list)  # shots added by session_extended
    requested: dict[int, float] = field(default_factory=dict)  # index -> position asked for
    reached: dict[int, float] = field(default_factory=dict)  # index -> position the rail said
    files: dict[int, dict[str, FrameFile]] = field(default_factory=dict)  # since any rejection
    expected: dict[int, int] = field(default_factory=dict)  # index -> files the shot has
    stacked: dict[int, list[str]] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)  # index -> last reason
    faults: list[Fault] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    paused: bool = False
    outcome: str | None = None  # of the last session_finished; None again once resumed
    last_seq: int = 0

    @property
    def saved(self) -> dict[int, list[FrameFile]]:
        """Shots with every file journaled as saved, by index, in index order."""
        return {
            i: list(named.values())
            for i, named in sorted(self.files.items())
            if named and len(named) >= self.expected.get(i, 1)
        }

    @property
    def incomplete(self) -> dict[int, list[FrameFile]]:
        """Shots with some but not all files saved (a crash between a RAW and its JPEG)."""
        done = self.saved
        return {i: list(n.values()) for i, n in sorted(self.files.items()) if n and i not in done}

    @property
    def skipped(self) -> set[int]:
        """Shots whose last decision was skip and that were not saved after all."""
        last = {d.index: d.choice for d in self.decisions}
        return {i for i, choice in last.items() if choice == "skip"} - set(self.saved)


def replay(events: Iterable[Event]) -> SessionState:
    """Fold the events into a :class:`SessionState`. Pure; unknown event types are ignored."""
    state = SessionState()
    for ev in events:
        state.last_seq = ev.seq
        kind = ev.type
        if kind == "session_started":
            state.plan = state.plan if state.plan is not None else dict(ev["plan"])
            state.paused, state.outcome = False, None
        elif kind == "session_extended":
            state.extended += [float(p) for p in ev["positions_um"]]
        elif kind == "shot_requested":
            state.requested[ev["index"]] = float(ev["position_um"])
        elif kind == "position_reached":
            state.reached[ev["index"]] = float(ev["position_um"])
        elif kind == "file_saved":
            index = ev["index"]
            record = FrameFile(index, ev["name"], ev["size"], ev["sha256"])
            state.files.setdefault(index, {})[record.name] = record
            state.expected[index] = ev.get("of", 1)
        elif kind == "frame_stacked":
            state.stacked.setdefault(ev["index"], []).append(ev["name"])
        elif kind == "frame_rejected":  # its files were moved aside; the shot is to be re-taken
            state.files.pop(ev["index"], None)
            state.stacked.pop(ev["index"], None)
            state.rejected[ev["index"]] = ev["reason"]
        elif kind == "fault":
            state.faults.append(Fault(ev.seq, ev["index"], ev["kind"], ev["message"]))
        elif kind == "decision":
            state.decisions.append(Decision(ev.seq, ev["index"], ev["choice"], ev["by"]))
        elif kind == "session_paused":
            state.paused = True
        elif kind == "session_resumed":
            state.paused, state.outcome = False, None
        elif kind == "session_finished":
            state.outcome = ev["outcome"]
    return state


def next_missing(
    plan_positions: Sequence[float], state: SessionState, *, include_skipped: bool = False
) -> list[int]:
    """Planned shot indices (from 1) still to take, in order: not saved, or rejected since.

    Run it on the state after :func:`rig.session.folder.recover` (which journals a
    ``frame_rejected`` for every frame that failed verification). Shots the operator or the
    policy skipped stay skipped unless ``include_skipped``. A saved shot whose journaled
    position is not where the plan puts it means this is not the session's plan: refused.
    """
    saved = state.saved
    for index in saved:
        at = state.requested.get(index)
        if index <= len(plan_positions) and at is not None:
            planned = plan_positions[index - 1]
            if abs(at - planned) > POSITION_TOLERANCE_UM:
                raise SessionError(
                    f"shot {index} was taken at {at} um but the plan puts it at {planned} um: "
                    "this is not the plan the session was started with; resume with the plan "
                    "in its session.toml"
                )
    skip = set() if include_skipped else state.skipped
    return [i for i in range(1, len(plan_positions) + 1) if i not in saved and i not in skip]
