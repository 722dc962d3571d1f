"""A whole capture session, new or resumed: folder, journal, shots, the stack at the end.

The devices come in connected (the command or the TUI owns them); this module owns the order:
folder and ``session.toml`` first, the journal next, then shots, then the stack. A resume
verifies what is on disk against the journal (``folder.recover``), re-stacks the good frames and
shoots only what is missing, so every planned position ends up captured exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    Shot,
    ShotCamera,
    State,
    fault_policy,
    stackable,
)
from rig.session.folder import (
    SessionFolder,
    create_session_folder,
    read_session_file,
    recover,
    write_session_file,
)
from rig.session.journal import Journal, next_missing
from rig.session.plan import Plan
from rig.session.stacker import FrameDone, StackingWorker, StackJob, StackOutcome
from stacking import files


@dataclass
class SessionResult:
    folder: SessionFolder
    shot: int  # shots taken by this run
    restacked: int  # frames from before (a resume)
    outcome: StackOutcome
    note: str = ""  # e.g. why the rail did not return to the start
    # from the last frame this run saved (on disk, journaled) to the final stack written
    last_frame_to_stack_s: float | None = None


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
    on_shot: Callable[[Shot], None] | None = None,
    on_session: Callable[[CaptureSession], None] | None = None,
    **session_options: Any,
) -> SessionResult:
    """Shoot what the session is missing (all of it, for a new one), stacking as frames land.

    ``session_options`` go to :class:`CaptureSession` (``decide``, ``on_state``, ...); without
    ``decide``, the profile's ``plan.on_fault`` policy answers faults."""
    record = read_session_file(folder)
    profile = record.profile()
    positions = shot_positions(record.plan)
    session_options.setdefault("decide", fault_policy(profile.plan.on_fault))
    resumed = any(e.type == "shot_requested" for e in journal.events)
    recovery = recover(folder, journal)
    todo = next_missing(positions, recovery.state)
    if resumed:
        journal.append("session_resumed")
    stacker = StackingWorker(
        StackJob(
            profile.stack_settings(),
            folder.outputs,
            on_frame=lambda done: _stacked(journal, done),
            on_preview=lambda snapshot, fused: write_preview(folder.preview, snapshot),
            preview_every=profile.output.preview_every,
        )
    ).start()
    for index in sorted(recovery.good):  # the frames from before, first and in order
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
        **session_options,
    )
    if on_session is not None:
        on_session(session)
    try:
        shots = session.run(todo)
    except BaseException:
        stacker.abort()
        raise
    session.set_state(State.FINISHING)
    try:
        outcome = stacker.finish()
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
    journal.append("session_finished", outcome="done", **finished)
    session.set_state(State.DONE)
    return SessionResult(folder, len(shots), len(recovery.good), outcome, note, latency)


def shot_positions(plan: dict[str, Any]) -> list[float]:
    """Where each shot is taken, by shot index from 1: every planned position, as many times
    as ``shots_per_position`` (the shots of one position all go to the stack; their noise
    averages out where that position is the sharpest)."""
    repeat = int(plan.get("shots_per_position", 1))
    return [float(p) for p in plan["positions_um"] for _ in range(repeat)]


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


def open_session(path: Path) -> tuple[SessionFolder, Journal]:
    folder = SessionFolder.open(path)
    journal = Journal.resume(folder.journal)
    if journal.state().outcome == "done":
        journal.close()
        raise SessionError(f"{path} is finished: nothing to resume (re-stack it: stackrig stack)")
    return folder, journal
