"""Focus stepping with the lens's own focus motor, driven through the camera (no rail).

A second kind of :class:`~rig.devices.protocols.FocusDriver`: instead of moving the camera, it
asks the camera body to turn the lens's focus motor through a libgphoto2 setting. Which setting,
and what it means, is read from the camera at :meth:`LensFocusDriver.connect` (never from the
model name, because the same body offers different settings on different libgphoto2 builds):

* ``manualfocusdrive`` as a radio with "Near 1..3" / "Far 1..3" / "None" (Canon EOS): one step
  is one Near/Far choice. libgphoto2 only sends a setting whose value changed, so every step is
  followed by "None" (python-gphoto2#135). The camera must be in live view.
* ``manualfocusdrive`` as a range (Nikon, -32767..32767): a signed number of motor steps in one
  command. Works only in live view ("Nikon manual focus works only in LiveView mode.").
* ``manualfocus`` as a range (Sony, -7..7): the magnitude is a step *size*, not a count, and the
  sizes are far from linear (one size-3 step is about eight size-1 steps, indi-3rdparty#1341), so
  a move of n steps is n commands of the same size; 0 is never sent (it means AF/MF hold).

Direction: positive micrometres drive Far (towards infinity), negative drive Near, so focusing on
the near end, setting zero and stacking in the positive direction matches a rail.

Positions are *counted*, not measured. A lens has no absolute focus position the camera reports
(gphoto2#554), and focus motors lose steps (more so after a direction change), so lens stepping
is not repeatable: ``position_um`` is the steps this driver commanded since ``connect`` or
``set_zero`` times ``um_per_step``, and ``set_zero`` (at a point the operator chose by eye) is the
only reference there is. ``um_per_step`` is the focus shift of one step of the chosen
``step_size``; calibrate it per lens and magnification.

Errors: a camera that refuses or fails a command raises :class:`~rig.errors.CameraError` with
advice for that mechanism; motion policy (a move that ran past its time bound, or was stopped)
raises :class:`~rig.errors.RailError`, as every rail driver does, so :class:`Rail` and the
session treat a lens like a rail.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from rig.errors import CameraError, RailError

CANON_NIKON_KEY = "manualfocusdrive"
SONY_KEY = "manualfocus"
RADIO_TYPES = ("radio", "menu")
JOG_MARGIN_S = 5.0  # fixed part of a jog's time bound
JOG_S_PER_STEP = 1.0  # one lens command: the PTP call plus the camera's event round trip
NEAR_FAR_RE = re.compile(r"^\s*(near|far)\s*(\d+)\s*$", re.IGNORECASE)
NO_FOCUS_CONTROL = (
    "{model} offers no lens focus control through libgphoto2 (no manualfocusdrive/manualfocus "
    "setting): use a focus rail"
)


class ConfigAccess(Protocol):
    """The few camera settings calls the lens driver needs (a python-gphoto2 camera behind it).

    ``get(key)`` returns ``(type, value, choices, range)``: ``type`` is the widget type in lower
    case ("radio", "menu", "range", "text", "toggle", ...), ``choices`` the radio/menu choices
    (empty otherwise) and ``range`` ``(min, max, step)`` for a range widget (None otherwise).
    ``set(key, value)`` writes one setting to the camera and returns once the camera accepted it;
    it bounds its own wait, and raises :class:`~rig.errors.CameraError` carrying libgphoto2's
    message when the camera refuses. Range values are passed as ``int``.
    """

    def keys(self) -> list[str]: ...

    def get(self, key: str) -> tuple[str, object, list[str], tuple[float, float, float] | None]: ...

    def set(self, key: str, value: object) -> None: ...

    def model(self) -> str: ...


class Chunk(NamedTuple):
    """One command: ``move`` drives the lens by ``steps``; ``reset`` (if any) re-arms the key."""

    steps: int
    move: object
    reset: object | None


class Mechanism(Protocol):
    """One way a camera drives its lens (see the module notes for the three there are)."""

    @property
    def key(self) -> str:
        """The camera setting it writes."""
        ...

    def describe(self) -> str: ...

    def chunks(self, steps: int) -> Iterator[Chunk]:
        """The commands for a signed move of ``steps``, in order."""
        ...

    def advice(self, message: str) -> str:
        """What the operator should do when the camera refused a command with ``message``."""
        ...


@dataclass(frozen=True)
class CanonDrive:
    """Canon EOS: one Near/Far choice per step, then None so the next step counts as a change."""

    key: str
    near: str
    far: str
    none: str

    def describe(self) -> str:
        return f"{self.key} radio, {self.near!r}/{self.far!r} then {self.none!r}"

    def chunks(self, steps: int) -> Iterator[Chunk]:
        sign = 1 if steps > 0 else -1
        for _ in range(abs(steps)):
            yield Chunk(sign, self.far if sign > 0 else self.near, self.none)

    def advice(self, message: str) -> str:
        return "turn on live view (viewfinder) first, and set the lens switch to AF"


@dataclass(frozen=True)
class NikonDrive:
    """Nikon: signed motor steps, many per command, split where a move exceeds the range."""

    key: str
    size: int  # motor steps per driver step
    most: int  # the largest magnitude one command may carry

    def describe(self) -> str:
        return f"{self.key} range, {self.size} motor step(s) per step, at most {self.most} a call"

    def chunks(self, steps: int) -> Iterator[Chunk]:
        sign = 1 if steps > 0 else -1
        per_call = self.most // self.size
        left = abs(steps)
        while left:
            n = min(left, per_call)
            yield Chunk(sign * n, sign * n * self.size, None)
            left -= n

    def advice(self, message: str) -> str:
        if "limit" in message.lower():
            return "the lens is at the end of its focus travel: move the other way"
        return "turn on live view (viewfinder) first, and set the lens to AF"


@dataclass(frozen=True)
class SonyDrive:
    """Sony: one command of the chosen (non-linear) step size per step."""

    key: str
    size: int  # the step size sent, 1 (finest) .. 7

    def describe(self) -> str:
        return f"{self.key} range, size {self.size} per step"

    def chunks(self, steps: int) -> Iterator[Chunk]:
        sign = 1 if steps > 0 else -1
        for _ in range(abs(steps)):
            yield Chunk(sign, sign * self.size, None)

    def advice(self, message: str) -> str:
        return "set the camera to manual focus (MF) and PC remote control, with the lens attached"


# -- detection (reads the camera, decides nothing by model name) ----------------------------------


def detect(config: ConfigAccess, step_size: int) -> Mechanism:
    """The focus mechanism the camera offers, configured for ``step_size``."""
    keys = set(config.keys())
    model = config.model()
    if CANON_NIKON_KEY in keys:
        kind, _, choices, span = config.get(CANON_NIKON_KEY)
        if kind in RADIO_TYPES:
            return canon_drive(model, CANON_NIKON_KEY, choices, step_size)
        if kind == "range":
            return nikon_drive(model, CANON_NIKON_KEY, span, step_size)
    if SONY_KEY in keys:
        kind, _, _, span = config.get(SONY_KEY)
        if kind == "range":
            return sony_drive(model, SONY_KEY, span, step_size)
    raise CameraError(NO_FOCUS_CONTROL.format(model=model))


def canon_drive(model: str, key: str, choices: list[str], step_size: int) -> CanonDrive:
    """Pick the Near/Far choices of ``step_size`` (1 smallest, 3 largest) by their text."""
    by_size: dict[tuple[str, int], str] = {}
    for choice in choices:
        match = NEAR_FAR_RE.match(choice)
        if match:
            by_size[(match[1].lower(), int(match[2]))] = choice
    none = next((c for c in choices if c.strip().lower() == "none"), None)
    sizes = sorted(size for way, size in by_size if way == "near" and ("far", size) in by_size)
    if none is None or not sizes:
        raise CameraError(
            f"{model}: {key} offers {choices}, not Near/Far steps with None between them: "
            "this lens drive is not supported; use a focus rail"
        )
    if step_size not in sizes:
        raise CameraError(
            f"{model}: {key} has no step size {step_size} (it offers {sizes}): "
            "choose one of those in the profile"
        )
    return CanonDrive(key, by_size[("near", step_size)], by_size[("far", step_size)], none)


def nikon_drive(
    model: str, key: str, span: tuple[float, float, float] | None, step_size: int
) -> NikonDrive:
    most = _symmetric_max(model, key, span)
    if step_size > most:
        raise CameraError(
            f"{model}: step size {step_size} is above the largest drive {most} of {key}: "
            "choose a smaller step size in the profile"
        )
    return NikonDrive(key, step_size, most)


def sony_drive(
    model: str, key: str, span: tuple[float, float, float] | None, step_size: int
) -> SonyDrive:
    most = _symmetric_max(model, key, span)
    if step_size > most:
        raise CameraError(
            f"{model}: {key} offers step sizes 1..{most}, not {step_size}: "
            "choose one of those in the profile"
        )
    return SonyDrive(key, step_size)


def _symmetric_max(model: str, key: str, span: tuple[float, float, float] | None) -> int:
    """The largest magnitude a signed range allows in both directions."""
    most = int(min(span[1], -span[0])) if span else 0
    if most < 1:
        raise CameraError(
            f"{model}: {key} has range {span}, not a signed range around 0: "
            "this lens drive is not supported; use a focus rail"
        )
    return most


# -- the driver ------------------------------------------------------------------------------------


class LensFocusDriver:
    """A :class:`~rig.devices.protocols.FocusDriver` that steps the lens's focus motor.

    ``um_per_step`` converts counted steps to micrometres; ``settle_s`` is waited after every
    command (the camera acknowledges before the motor has stopped); ``step_size`` picks the
    Canon "Near/Far n", the Sony step size, or the Nikon motor steps per step.
    """

    name = "lens"

    def __init__(
        self,
        config: ConfigAccess,
        *,
        um_per_step: float = 1.0,
        settle_s: float = 0.0,
        step_size: int = 1,
    ) -> None:
        if um_per_step <= 0:
            raise ValueError(f"um_per_step = {um_per_step}: must be > 0")
        if settle_s < 0:
            raise ValueError(f"settle_s = {settle_s}: must be >= 0")
        if step_size < 1:
            raise ValueError(f"step_size = {step_size}: must be >= 1")
        self.config = config
        self.um_per_step = um_per_step
        self.settle_s = settle_s
        self.step_size = step_size
        self.mechanism: Mechanism | None = None
        # Written only by the thread that moves; an int read is atomic, so position_um may be
        # called from any thread without a lock.
        self._steps = 0
        self._stop = threading.Event()
        # The count starts at connect: that is the reference, and nothing restarts it unseen.
        self.referenced = False

    def connect(self) -> str:
        self.mechanism = detect(self.config, self.step_size)
        self._steps = 0
        self._stop.clear()
        self.referenced = True
        return f"{self.config.model()} lens focus ({self.mechanism.describe()})"

    def close(self) -> None:
        """Forget the mechanism; the camera connection belongs to the camera, not to focus."""
        self.mechanism = None

    def position_um(self) -> float:
        return self._steps * self.um_per_step

    def move_to(self, target_um: float, timeout_s: float) -> None:
        """Step to the nearest step of ``target_um``; RailError past ``timeout_s`` or on stop."""
        self._drive(self._steps_to(target_um), time.monotonic() + timeout_s)

    def jog(self, delta_um: float) -> None:
        """Blocking, like the Sangaboard: there is no camera command that queues lens steps."""
        steps = round(delta_um / self.um_per_step)
        bound = JOG_MARGIN_S + abs(steps) * (JOG_S_PER_STEP + self.settle_s)
        self._drive(steps, time.monotonic() + bound)

    def stop(self) -> None:
        """Abort the move between two commands; the command under way still finishes."""
        self._stop.set()

    def unlock(self) -> str:
        return "lens focus has no lock"

    def set_zero(self) -> None:
        self._steps = 0

    def home(self, timeout_s: float) -> None:
        raise CameraError("a lens has no home position: focus on the near end and set zero")

    def energise(self, on: bool) -> None:
        """Nothing to do: the camera powers the focus motor only while it drives."""

    # -- stepping ------------------------------------------------------------------------------

    def _steps_to(self, target_um: float) -> int:
        return round(target_um / self.um_per_step) - self._steps

    def _drive(self, steps: int, deadline: float) -> None:
        mechanism = self._connected()
        self._stop.clear()
        done = 0
        for chunk in mechanism.chunks(steps):
            self._check_going(done, steps, deadline)
            self._send(mechanism, chunk.move)
            self._steps += chunk.steps  # the lens moved once the drive command was accepted
            done += chunk.steps
            if chunk.reset is not None:
                self._send(mechanism, chunk.reset)
            if self.settle_s > 0:
                self._stop.wait(self.settle_s)  # a stop cuts the settle short
        if self._stop.is_set():
            raise self._stopped(done, steps)

    def _check_going(self, done: int, steps: int, deadline: float) -> None:
        if self._stop.is_set():
            raise self._stopped(done, steps)
        if time.monotonic() > deadline:
            raise RailError(
                f"lens focus move did not finish in time: {done} of {steps} steps done, the lens "
                "is there; the camera is slow or busy: allow more time (lower the speed in the "
                "profile) or check the camera"
            )

    def _send(self, mechanism: Mechanism, value: object) -> None:
        try:
            self.config.set(mechanism.key, value)
        except CameraError as err:
            raise CameraError(
                f"{self.config.model()}: lens focus {mechanism.key}={value!r} failed ({err}): "
                f"{mechanism.advice(str(err))}"
            ) from err

    def _connected(self) -> Mechanism:
        if self.mechanism is None:
            raise CameraError("lens focus is not connected: connect the camera and the lens first")
        return self.mechanism

    def _stopped(self, done: int, steps: int) -> RailError:
        return RailError(
            f"stopped on request after {done} of {steps} lens steps: the lens is where it "
            "halted; check the focus, then move again"
        )
