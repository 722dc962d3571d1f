"""The capture session's shot loop: move, settle, shoot, save, journal, then stack.

One thread (the one calling :meth:`CaptureSession.run`) owns the focus axis and the camera.
Per shot, in this order and never another: ``shot_requested``; approach and wait (the axis
settles); ``position_reached`` with the position the controller reports; the simulated rig's
hook (if any); capture into ``frames/.incoming``; :func:`~rig.session.folder.save_frame` moves
the files in under their final names, fsync'd and hashed; ``file_saved`` per file; only then the
frame goes to the stacking worker, which reads it from disk on its own thread: stacking never
holds up the shutter.

Other threads (the TUI, a signal handler) steer it with :meth:`pause`, :meth:`resume`,
:meth:`abort` (at the next shot boundary) and :meth:`stop_now` (stops the rail mid-move too).

Faults: a rail or camera error is put to ``decide`` (the TUI asks the operator; headless, the
profile's ``plan.on_fault`` policy answers) as retry, skip or abort, and the answer journaled. A
lost serial link is reconnected before a retry. A controller that restarted (its count, so the
position, is gone) is never retried blindly: retry there means the operator re-referenced it.
Before each shot the free disk space is checked, so a full disk stops cleanly between shots
instead of inside a download.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rig.devices.protocols import FocusAxis
from rig.errors import CameraError, ControllerRestarted, LinkLost, RailError, SessionError
from rig.profiles.schema import FAULT_POLICIES
from rig.session.folder import SessionFolder, journal_saved, save_frame, sweep_incoming
from rig.session.journal import Journal

RAW_SUFFIXES = {".nef", ".cr2", ".cr3", ".arw", ".raf", ".orf", ".rw2", ".dng", ".pef"}
# Free space kept beyond the next shot: the journal, the preview and the stack's own files
# must still fit when the frames have filled the disk.
DISK_MARGIN_BYTES = 64 * 1024 * 1024
SHOT_BYTES_GUESS = 60 * 1024 * 1024  # before the first shot: a 24 MP RAW+JPEG pair


class State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHING = "finishing"  # every shot taken; the stack is being finished
    DONE = "done"
    STOPPED = "stopped"  # aborted, or a fault stopped it: the session folder resumes it
    FAILED = "failed"  # could not finish its stack


class ShotCamera(Protocol):
    def capture(self, folder: Path) -> list[Path]: ...


class Stacker(Protocol):
    def submit(self, path: Path) -> None: ...


class SessionStopped(SessionError):
    """The run stopped before its plan was done; the session folder resumes it."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        # "aborted" (asked to), "paused" (the rail must be re-referenced first), "failed" (a
        # fault the policy would not retry), "disk" (the disk is full)
        self.outcome = outcome


@dataclass(frozen=True)
class Shot:
    index: int  # from 1
    position_um: float  # where the controller says it stopped
    files: list[Path]  # in frames/, final names
    seconds: float  # request to saved


@dataclass(frozen=True)
class ShotFault:
    """A shot that failed, put to whoever decides (operator or policy)."""

    index: int
    kind: str  # "rail", "camera", "rail restarted"
    message: str
    attempt: int  # 1 for the shot's first failure
    choices: tuple[str, ...]  # of "retry", "skip", "abort"


Decide = Callable[[ShotFault], str]


def fault_policy(name: str, retries: int = 1) -> Decide:
    """The headless answer to faults: ``retry`` a shot ``retries`` times then stop; ``skip``:
    retry as often, then leave that position out (a resume does not re-shoot it); ``stop``:
    stop at the first fault. A restarted controller always stops: nobody is there to
    re-reference it."""
    if name not in FAULT_POLICIES:
        raise ValueError(f"fault policy {name!r}: one of {', '.join(FAULT_POLICIES)}")

    def decide(fault: ShotFault) -> str:
        if fault.kind == "rail restarted" or name == "stop":
            return "abort"
        if fault.attempt <= retries:
            return "retry"
        return "skip" if name == "skip" and "skip" in fault.choices else "abort"

    return decide


class CaptureSession:
    def __init__(
        self,
        folder: SessionFolder,
        journal: Journal,
        positions_um: Sequence[float],
        axis: FocusAxis,
        camera: ShotCamera,
        stacker: Stacker | None = None,
        *,
        axis_name: str = "z",
        decide: Decide | None = None,
        decided_by: str = "policy",
        before_shot: Callable[[int], object] | None = None,
        on_shot: Callable[[Shot], None] | None = None,
        on_state: Callable[[State], None] | None = None,
        on_skip: Callable[[int], None] | None = None,
        free_bytes: Callable[[Path], int] | None = None,
    ) -> None:
        self.folder, self.journal = folder, journal
        self.positions_um = tuple(positions_um)
        self.axis, self.camera, self.stacker = axis, camera, stacker
        self.axis_name = axis_name
        self.decide, self.decided_by = decide or fault_policy("retry"), decided_by
        self.before_shot, self.on_shot, self.on_state = before_shot, on_shot, on_state
        self.on_skip = on_skip
        self._free_bytes = free_bytes or (lambda path: shutil.disk_usage(path).free)
        self._largest_shot = 0
        self.state = State.IDLE
        self.todo: tuple[int, ...] = ()  # what run() was asked to shoot
        self._abort = threading.Event()
        self._pause = threading.Event()
        self._wake = threading.Condition()

    # -- from any thread ---------------------------------------------------------------------

    def pause(self) -> None:
        """Stop before the next shot and wait there for :meth:`resume` (or :meth:`abort`)."""
        self._pause.set()

    def resume(self) -> None:
        with self._wake:
            self._pause.clear()
            self._wake.notify_all()

    def abort(self) -> None:
        """Stop before the next shot; the session stays resumable."""
        with self._wake:
            self._abort.set()
            self._wake.notify_all()

    def stop_now(self) -> None:
        """Abort and stop the rail at once, mid-move if it is moving (Esc, quit, Ctrl-C)."""
        self.abort()
        with contextlib.suppress(RailError):
            self.axis.stop()

    def set_state(self, state: State) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(state)

    # -- the owner thread ------------------------------------------------------------------------

    def run(self, indices: Sequence[int]) -> list[Shot]:
        """Shoot ``indices`` (from 1) in order; SessionStopped when the run stops early."""
        self.todo = tuple(indices)
        self.set_state(State.RUNNING)
        shots = []
        for index in indices:
            self._boundary(index)
            shot = self._shoot(index)
            if shot is not None:
                shots.append(shot)
        return shots

    def _boundary(self, index: int) -> None:
        """Between shots: honour abort and pause, and check the disk."""
        if self._pause.is_set() and not self._abort.is_set():
            self.journal.append("session_paused")
            self.set_state(State.PAUSED)
            with self._wake:
                self._wake.wait_for(lambda: not self._pause.is_set() or self._abort.is_set())
            if not self._abort.is_set():
                self.journal.append("session_resumed")
                self.set_state(State.RUNNING)
        if self._abort.is_set():
            self._stop("aborted on request", "aborted")
        need = max(self._largest_shot, SHOT_BYTES_GUESS) * 2 + DISK_MARGIN_BYTES
        free = self._free_bytes(self.folder.path)
        if free < need:
            self._disk_full(index, f"{_mb(free)} free, a shot needs about {_mb(need)} with margin")

    def _shoot(self, index: int) -> Shot | None:
        target = self.positions_um[index - 1]
        start = time.monotonic()
        self.journal.append("shot_requested", index=index, position_um=target)
        attempt = 0
        while True:
            attempt += 1
            try:
                files = self._attempt(index, target)
                break
            except (OSError, RailError, CameraError, SessionError) as exc:
                if _out_of_space(exc):  # the download, the save or the journal said so
                    self._disk_full(index, str(exc))
                if isinstance(exc, OSError):
                    raise  # not a device fault: a bug or the session folder itself
                if self._abort.is_set():  # stop_now() stopped the move: not a fault
                    self._stop(f"aborted during shot {index}", "aborted")
                choice = self._fault(index, attempt, exc)
                sweep_incoming(self.folder)  # a partial download must not join the retry
                if choice == "skip":
                    if self.on_skip is not None:
                        self.on_skip(index)
                    return None
                if choice == "abort":
                    outcome = "paused" if isinstance(exc, ControllerRestarted) else "failed"
                    self._stop(f"shot {index} failed: {exc}", outcome)
                if isinstance(exc, LinkLost):
                    self._reconnect(index)
        shot = Shot(index, self.axis.position_um(), files, time.monotonic() - start)
        if self.on_shot is not None:
            self.on_shot(shot)
        return shot

    def _attempt(self, index: int, target: float) -> list[Path]:
        self.axis.move_to(target)
        self.journal.append("position_reached", index=index, position_um=self.axis.position_um())
        if self.before_shot is not None:
            self.before_shot(index)
        downloaded = self.camera.capture(self.folder.incoming)
        saved = save_frame(self.folder, index, target, downloaded, axis=self.axis_name)
        journal_saved(self.journal, saved)  # on disk and journaled: now it may be used
        self._largest_shot = max(self._largest_shot, sum(s.record.size for s in saved))
        paths = [s.path for s in saved]
        if self.stacker is not None:
            self.stacker.submit(stackable(paths))
        return paths

    def _fault(self, index: int, attempt: int, exc: Exception) -> str:
        choices: tuple[str, ...]
        if isinstance(exc, ControllerRestarted):
            kind, choices = "rail restarted", ("retry", "abort")
        else:
            kind = "rail" if isinstance(exc, RailError) else "camera"
            kind = kind if isinstance(exc, RailError | CameraError) else "session"
            choices = ("retry", "skip", "abort")
        self.journal.append("fault", index=index, kind=kind, message=str(exc))
        choice = self.decide(ShotFault(index, kind, str(exc), attempt, choices))
        if choice not in choices:
            raise ValueError(f"fault decision {choice!r}: one of {', '.join(choices)}")
        self.journal.append("decision", index=index, choice=choice, by=self.decided_by)
        return choice

    def _reconnect(self, index: int) -> None:
        """The serial link dropped (a cable pulled): open it again before the retry. If the
        controller restarted meanwhile, the next move is refused as unreferenced."""
        try:
            said = self.axis.connect()
        except RailError as exc:
            self.journal.append("fault", index=index, kind="rail", message=str(exc))
            return  # the retry fails on the closed link and asks again
        self.journal.append("rail_reconnected", index=index, message=said)
        if not self.axis.referenced:
            lost = ControllerRestarted(f"the rail came back not referenced ({said})")
            if self._fault(index, 1, lost) == "abort":
                self._stop(f"shot {index}: {lost}", "paused")

    def _disk_full(self, index: int, detail: str) -> None:
        message = (
            f"the disk holding {self.folder.path} is full ({detail}): free space, then resume; "
            "every frame shot so far is saved"
        )
        self.journal.append("fault", index=index, kind="disk", message=message)
        self._stop(f"stopped before shot {index}: {message}", "disk")

    def _stop(self, message: str, outcome: str) -> None:
        with contextlib.suppress(RailError):  # the rail may be what failed: journaled already
            self.axis.stop()
        with contextlib.suppress(OSError):  # a full disk may refuse even this line
            self.journal.append("session_finished", outcome=outcome)
        self.set_state(State.STOPPED)
        raise SessionStopped(f"{message}; resume with 'stackrig capture --resume'", outcome)


def stackable(paths: Sequence[Path]) -> Path:
    """The file of a shot the stacker takes: the JPEG of a RAW+JPEG pair (fast to decode, the
    RAW stays for a re-stack), else the one file there is."""
    plain = [p for p in paths if p.suffix.lower() not in RAW_SUFFIXES]
    return (plain or list(paths))[0]


def _out_of_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` or what caused it is the disk running out of space."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__
    return False


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"
