"""The capture session's shot loop: move, settle, shoot, save, journal, then stack.

One thread (the one calling :meth:`CaptureSession.run`) owns the focus axis and the camera.
Per shot, in this order and never another: ``shot_requested``; approach and wait (the axis
settles); ``position_reached`` with the position the controller reports; the simulated rig's
hook (if any); capture into ``frames/.incoming``; :func:`~rig.session.folder.save_frame` moves
the files in under their final names, fsync'd and hashed; ``file_saved`` per file; only then the
frame goes to the stacking worker, which reads it from disk on its own thread: stacking never
holds up the shutter. Pause and abort act between shots.

Faults (headless policy: retry a shot once, then stop resumably): a rail or camera error is
journaled with the decision taken. A controller that restarted is never retried: its count
restarted, so the operator must re-reference before the run goes on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rig.devices.protocols import FocusAxis
from rig.errors import CameraError, ControllerRestarted, RailError, SessionError
from rig.session.folder import SessionFolder, journal_saved, save_frame, sweep_incoming
from rig.session.journal import Journal

RAW_SUFFIXES = {".nef", ".cr2", ".cr3", ".arw", ".raf", ".orf", ".rw2", ".dng", ".pef"}


class ShotCamera(Protocol):
    def capture(self, folder: Path) -> list[Path]: ...


class Stacker(Protocol):
    def submit(self, path: Path) -> None: ...


class SessionStopped(SessionError):
    """The run stopped before its plan was done; the session folder resumes it."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome  # "aborted", "paused" (operator needed), "failed"


@dataclass(frozen=True)
class Shot:
    index: int  # from 1
    position_um: float  # where the controller says it stopped
    files: list[Path]  # in frames/, final names
    seconds: float  # request to saved


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
        retries: int = 1,
        before_shot: Callable[[int], object] | None = None,
        on_shot: Callable[[Shot], None] | None = None,
    ) -> None:
        self.folder, self.journal = folder, journal
        self.positions_um = tuple(positions_um)
        self.axis, self.camera, self.stacker = axis, camera, stacker
        self.axis_name, self.retries = axis_name, retries
        self.before_shot, self.on_shot = before_shot, on_shot
        self._abort = threading.Event()
        self._pause = threading.Event()

    # -- from any thread: act at the next shot boundary ----------------------------------------

    def abort(self) -> None:
        self._abort.set()

    def pause(self) -> None:
        self._pause.set()

    # -- the owner thread ------------------------------------------------------------------------

    def run(self, indices: Sequence[int]) -> list[Shot]:
        """Shoot ``indices`` (from 1) in order; SessionStopped when the run stops early."""
        shots = []
        for index in indices:
            if self._abort.is_set():
                self._stop("aborted on request", "aborted", index)
            if self._pause.is_set():
                self.journal.append("session_paused")
                raise SessionStopped(f"paused before shot {index}", "paused")
            shots.append(self._shoot(index))
        return shots

    def _shoot(self, index: int) -> Shot:
        target = self.positions_um[index - 1]
        start = time.monotonic()
        self.journal.append("shot_requested", index=index, position_um=target)
        for attempt in range(self.retries + 1):
            try:
                files = self._attempt(index, target)
                break
            except ControllerRestarted as exc:
                self._fault(index, "rail restarted", exc, "abort")
                self._stop(f"shot {index}: {exc}", "paused", index)
            except (RailError, CameraError, SessionError) as exc:
                last = attempt == self.retries
                kind = "rail" if isinstance(exc, RailError) else "camera"
                self._fault(index, kind, exc, "abort" if last else "retry")
                if last:
                    self._stop(f"shot {index} failed {attempt + 1} times: {exc}", "failed", index)
                sweep_incoming(self.folder)  # a partial download must not join the retry
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
        paths = [s.path for s in saved]
        if self.stacker is not None:
            self.stacker.submit(stackable(paths))
        return paths

    def _fault(self, index: int, kind: str, exc: Exception, choice: str) -> None:
        self.journal.append("fault", index=index, kind=kind, message=str(exc))
        self.journal.append("decision", index=index, choice=choice, by="policy")

    def _stop(self, message: str, outcome: str, index: int) -> None:
        with contextlib.suppress(RailError):  # the rail may be what failed: journaled already
            self.axis.stop()
        self.journal.append("session_finished", outcome=outcome)
        raise SessionStopped(f"{message}; resume with 'stackrig capture --resume'", outcome)


def stackable(paths: Sequence[Path]) -> Path:
    """The file of a shot the stacker takes: the JPEG of a RAW+JPEG pair (fast to decode, the
    RAW stays for a re-stack), else the one file there is."""
    plain = [p for p in paths if p.suffix.lower() not in RAW_SUFFIXES]
    return (plain or list(paths))[0]
