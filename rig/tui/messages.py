"""What the rig's owner thread tells the app: Textual messages, posted from that thread.

Dataclasses (Textual's Message initialises itself in ``__post_init__``). Frequent ones (rail
position, previews, live view) collapse: a newer one replaces an older one
still in the queue (``can_replace``), so a burst of frames never floods the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


class RigMessage(Message):
    """Base of everything the owner thread posts."""


@dataclass(eq=False)
class Connected(RigMessage):
    said: list[str]  # one line per device, as connecting said it
    axis: str = ""  # the focus axis: protocol, port, soft limits, backlash


@dataclass(eq=False)
class Diagnosis(RigMessage):
    """What ``stackrig doctor`` found wrong with a device that is missing or was refused."""

    device: str  # "camera" or "rail"
    error: str  # what connecting said
    findings: list[str]  # "FAIL title", each followed by its "fix: ..." line


@dataclass(eq=False)
class Note(RigMessage):
    """Something a command said that the operator should read (not an error)."""

    text: str


@dataclass(eq=False)
class Failed(RigMessage):
    """A command failed; the message says what happened and what to do."""

    doing: str
    error: str


@dataclass(eq=False)
class RailStatus(RigMessage):
    position_um: float | None  # None: could not be read
    referenced: bool
    moving: bool

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RailStatus)


@dataclass(eq=False)
class CameraState(RigMessage):
    """The camera's summary and the settings that matter for a stack, with their choices."""

    summary: str  # model, lens, battery, card space
    settings: list[Any]  # ConfigValue, in SHOWN_SETTINGS order, those the camera has

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CameraState)


@dataclass(eq=False)
class LiveFrame(RigMessage):
    frame: Any  # RGB uint8, or None with ``why``
    why: str = ""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LiveFrame)


@dataclass(eq=False)
class SessionStarted(RigMessage):
    folder: str
    shots: int  # this run shoots


@dataclass(eq=False)
class ShotSaved(RigMessage):
    index: int
    position_um: float
    files: list[str]
    seconds: float


@dataclass(eq=False)
class FrameStacked(RigMessage):
    """The stacker took a frame (its sharpness and alignment confidence) or refused it."""

    name: str
    accepted: bool
    reason: str  # why it was refused ("" when taken)
    sharpness: float
    confidence: float


@dataclass(eq=False)
class StateChanged(RigMessage):
    state: str  # rig.session.capture.State values


@dataclass(eq=False)
class StackPreview(RigMessage):
    image: Any  # float RGB in [0, 1], at most preview size
    frames: int  # fused so far

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StackPreview)


@dataclass(eq=False)
class CoverageNow(RigMessage):
    verdict: str
    covered: bool
    picture: Any = None  # RGB uint8: which frame is the sharpest where (None: not yet)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CoverageNow)


@dataclass(eq=False)
class FaultAsked(RigMessage):
    """A shot failed; the owner thread waits for :meth:`answer` (retry, skip or abort)."""

    index: int
    kind: str
    message: str
    choices: tuple[str, ...]
    reply: Any  # a concurrent.futures.Future the answer goes into

    def answer(self, choice: str) -> None:
        if not self.reply.done():
            self.reply.set_result(choice)


@dataclass(eq=False)
class SessionEnded(RigMessage):
    outcome: str  # "done", or why it stopped ("aborted", "failed", "paused", "disk", "error"),
    # or "refused" (nothing was shot: no folder)
    message: str  # what to tell the operator
    folder: str
    advice: list[str]  # e.g. the command that extends the run
    extend: dict[str, int] = field(default_factory=dict)  # what the coverage verdict suggests
