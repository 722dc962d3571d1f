"""A whole capture session, new or resumed: folder, journal, shots, the stack at the end.

The devices come in connected (the command or the TUI owns them); this module owns the order:
folder and ``session.toml`` first, the journal next, then shots, then the stack. A resume
verifies what is on disk against the journal (``folder.recover``), re-stacks the good frames and
shoots only what is missing, so every planned position ends up captured exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rig.devices.protocols import FocusAxis
from rig.errors import RailError, SessionError
from rig.profiles import Profile
from rig.session.capture import (
    CaptureSession,
    SessionStopped,
    Shot,
    ShotCamera,
    State,
    fault_policy,
    stackable,
)
from rig.session.folder import (
    SessionFolder,
    create_session_folder,
    frame_index,
    read_session_file,
    recover,
    write_session_file,
)
from rig.session.journal import Journal, next_missing
from rig.session.plan import Plan, outside_limits
from rig.session.stacker import FrameDone, StackingWorker, StackJob, StackOutcome
from stacking import files
from stacking.report import Coverage


@dataclass
class SessionResult:
    folder: SessionFolder
    shot: int  # shots taken by this run
    restacked: int  # frames from before (a resume)
    outcome: StackOutcome
    note: str = ""  # e.g. why the rail did not return to the start
    # from the last frame this run saved (on disk, journaled) to the final stack written
    last_frame_to_stack_s: float | None = None
    ends_um: tuple[float, float] = (0.0, 0.0)  # the first and last position in focus order

    def extension_advice(self) -> list[str]:
        """What the coverage verdict suggests, as the commands that would do it."""
        c = self.outcome.result.coverage
        out = []
        for end, steps, at in (("first", c.extend_first, self.ends_um[0]),
                               ("last", c.extend_last, self.ends_um[1])):  # fmt: skip
            if steps:
                out.append(
                    f"stackrig capture --resume {self.folder.path} --extend-{end} {steps}   "
                    f"(beyond {at:.1f} um)"
                )
        return out


def plan_record(plan: Plan) -> dict[str, object]:
    """What session.toml keeps of the plan: enough to shoot exactly the same positions."""
    return {
        "positions_um": list(plan.positions_um),
        "shots_per_position": plan.shots_per_position,
        "approach": plan.approach,
        "settle_s": plan.settle_s,
        "return_to_start": plan.return_to_start,
    }


def new_session(profile: Profile, plan: Plan, captures_root: Path) -> tuple[SessionFolder, Journal]:
    folder = create_session_folder(
        captures_root, profile.name, datetime.now(), template=profile.output.folder_template
    )
    write_session_file(folder, profile, plan_record(plan), datetime.now())
    journal = Journal.create(folder.journal)
    journal.append("session_started", plan=plan_record(plan))
    return folder, journal


def shoot(
    folder: SessionFolder,
    journal: Journal,
    axis: FocusAxis,
    camera: ShotCamera,
    *,
    before_shot: Callable[[int], object] | None = None,
    on_shot: Callable[[Shot], object] | None = None,
    on_session: Callable[[CaptureSession], object] | None = None,
    on_coverage: Callable[[Coverage, np.ndarray | None], object] | None = None,
    on_preview: Callable[[np.ndarray, int], object] | None = None,
    on_stacked: Callable[[FrameDone], object] | None = None,
    **session_options: Any,
) -> SessionResult:
    """Shoot what the session is missing (all of it, for a new one), stacking as frames land.

    ``session_options`` go to :class:`CaptureSession` (``decide``, ``on_state``, ...); without
    ``decide``, the profile's ``plan.on_fault`` policy answers faults. ``on_coverage`` gets the
    coverage verdict so far with every preview, ``on_preview`` the stack so far (float RGB, at
    most 1024 px) as it is written to preview.jpg, ``on_stacked`` each frame the stacker took
    or refused (its report: sharpness, alignment, the reason); all on the stacking thread."""
    record = read_session_file(folder)
    profile = record.profile()
    positions = shot_positions(record.plan, journal.state().extended)
    session_options.setdefault("decide", fault_policy(profile.plan.on_fault))
    resumed = any(e.type == "shot_requested" for e in journal.events)
    recovery = recover(folder, journal)
    todo = next_missing(positions, recovery.state)
    if resumed:
        journal.append("session_resumed")

    def stacked(done: FrameDone) -> None:
        _stacked(journal, done)
        if on_stacked is not None:
            on_stacked(done)

    def previewed(snapshot: np.ndarray, fused: int) -> None:
        write_preview(folder.preview, snapshot)
        if on_preview is not None:
            on_preview(snapshot, fused)

    worker = StackingWorker(
        StackJob(
            profile.stack_settings(),
            folder.outputs,
            on_frame=lambda done: stacked(done),
            on_preview=lambda snapshot, fused: previewed(snapshot, fused),
            preview_every=profile.output.preview_every,
            on_coverage=on_coverage,
            compress=profile.stacking.compress_tiff,
        )
    ).start()
    done = set(recovery.good)
    stacker = InFocusOrder(worker, focus_order(positions, [*done, *todo]))
    for index in sorted(done):  # the frames from before
        stacker.submit(stackable(recovery.good[index]))
    saved_at: list[float] = []

    def shot_saved(shot: Shot) -> None:
        saved_at.append(time.monotonic())
        if on_shot is not None:
            on_shot(shot)

    session = CaptureSession(
        folder,
        journal,
        positions,
        axis,
        camera,
        stacker,
        axis_name="lens" if profile.rail.protocol == "lens" else profile.rail.axis,
        before_shot=before_shot,
        on_shot=shot_saved,
        on_skip=stacker.skipped,
        **session_options,
    )
    if on_session is not None:
        on_session(session)
    try:
        shots = session.run(todo)
    except SessionStopped as exc:
        worker.abort()
        if journal.events[-1].type != "session_finished":  # the stacker journaled after it
            journal.append("session_finished", outcome=exc.outcome)
        raise
    except BaseException:
        worker.abort()
        raise
    session.set_state(State.FINISHING)
    try:
        outcome = worker.finish()
    except BaseException:
        session.set_state(State.FAILED)
        raise
    latency = time.monotonic() - saved_at[-1] if saved_at else None
    note = ""
    if record.plan.get("return_to_start", True) and positions:
        try:
            axis.move_to(positions[0])
        except RailError as exc:
            note = f"the rail did not return to the start: {exc}"
    finished: dict[str, Any] = {"frames": len(outcome.result.accepted)}
    if latency is not None:
        finished["last_frame_to_stack_s"] = round(latency, 3)
    finished["coverage"] = outcome.result.coverage.to_dict()
    journal.append("session_finished", outcome="done", **finished)
    session.set_state(State.DONE)
    order = stacker.order
    ends = (positions[order[0] - 1], positions[order[-1] - 1])
    return SessionResult(folder, len(shots), len(recovery.good), outcome, note, latency, ends)


def shot_positions(plan: dict[str, Any], extended: Sequence[float] = ()) -> list[float]:
    """Where each shot is taken, by shot index from 1: every planned position, as many times
    as ``shots_per_position`` (the shots of one position all go to the stack; their noise
    averages out where that position is the sharpest), then the shots an extension added."""
    repeat = int(plan.get("shots_per_position", 1))
    return [float(p) for p in plan["positions_um"] for _ in range(repeat)] + list(extended)


def focus_order(positions: Sequence[float], indices: Iterable[int]) -> list[int]:
    """``indices`` in the order of their positions along the plan's direction: the order the
    stack is built in, whatever order they were shot in (an extension before the first end is
    shot last but stacked first). Equal positions keep their shot order. The direction is the
    plan's: from its first position to the next different one (extensions come after)."""
    second = next((p for p in positions if p != positions[0]), positions[0])
    sign = -1.0 if second < positions[0] else 1.0
    return sorted(set(indices), key=lambda i: (sign * positions[i - 1], i))


class InFocusOrder:
    """Hands frames to the stacking worker in focus order (each frame is aligned to the one
    before it, so a neighbour in focus must come before it). A frame that arrives early waits,
    on disk, until the ones before it in that order arrived or were skipped."""

    def __init__(self, worker: StackingWorker, order: list[int]) -> None:
        self.worker, self.order = worker, order
        self._next = 0
        self._ready: dict[int, Path | None] = {}

    def submit(self, path: Path) -> None:
        self._arrived(frame_index(path), path)

    def skipped(self, index: int) -> None:
        self._arrived(index, None)

    def _arrived(self, index: int, path: Path | None) -> None:
        self._ready[index] = path
        while self._next < len(self.order) and self.order[self._next] in self._ready:
            ready = self._ready.pop(self.order[self._next])
            self._next += 1
            if ready is not None:
                self.worker.submit(ready)


def extend_session(folder: SessionFolder, journal: Journal, end: str, steps: int) -> list[float]:
    """Add ``steps`` positions beyond the ``first`` or ``last`` end of the plan (and of any
    extension before), one plan step apart, checked against the rail's soft limits; journaled,
    so the next :func:`shoot` takes them. Returns them in the order they will be shot: always
    moving in the plan's direction (the backlash approach side), so a first-end extension
    starts from its outermost position."""
    record = read_session_file(folder)
    plan = record.plan
    if end not in ("first", "last"):
        raise SessionError(f"extend {end!r}: the first or the last end")
    if steps < 1:
        raise SessionError(f"extend by {steps}: give 1 or more steps")
    planned = [float(p) for p in plan["positions_um"]]
    if len(planned) < 2:
        raise SessionError("a one-position plan has no step to extend by")
    every = shot_positions(plan, journal.state().extended)
    sign = 1.0 if planned[-1] >= planned[0] else -1.0
    step = abs(planned[1] - planned[0])
    repeat = int(plan.get("shots_per_position", 1))
    if end == "last":
        edge = max(every, key=lambda p: sign * p)
        new = [edge + sign * step * k for k in range(1, steps + 1)]
    else:
        edge = min(every, key=lambda p: sign * p)
        new = [edge - sign * step * k for k in range(steps, 0, -1)]
    shots = [round(p, 3) + 0.0 for p in new for _ in range(repeat)]
    problems = outside_limits(shots, record.profile(), f"the extension at the {end} end")
    if problems:
        raise SessionError("; ".join(problems))
    journal.append("session_extended", positions_um=shots, end=end)
    return shots


def write_preview(path: Path, snapshot: np.ndarray) -> None:
    """The stack so far as a JPEG, replaced atomically (a viewer never sees half a file)."""
    rgb8 = np.clip(snapshot * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR))
    if ok:
        files.atomic_write(path, lambda f: f.write(data.tobytes()))


def _stacked(journal: Journal, done: FrameDone) -> None:
    if done.report is not None:  # frame names start with the shot number: 0007_z+...
        index = int(done.path.name.split("_")[0])
        journal.append("frame_stacked", index=index, name=done.path.name)


def open_session(path: Path, *, finished: bool = False) -> tuple[SessionFolder, Journal]:
    """A session folder to go on with; a finished one only when ``finished`` (to extend it)."""
    folder = SessionFolder.open(path)
    journal = Journal.resume(folder.journal)
    if journal.state().outcome == "done" and not finished:
        journal.close()
        raise SessionError(
            f"{path} is finished: nothing to resume (extend it with --extend-first N or "
            "--extend-last N, or re-stack it: stackrig stack)"
        )
    return folder, journal
