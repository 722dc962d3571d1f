"""The one thread that owns the rig's devices, for the TUI.

The app never touches a device: it asks this thread (``jog``, ``move_to``, ``shoot`` ...), which
runs the requests in order and posts what happened as messages (``rig.tui.messages``). Only
:meth:`RigOwner.stop` acts at once, from the app's thread: stopping motion must never wait
behind a move. A capture session runs on this thread too; pause, resume and abort go to it
directly (they act at shot boundaries), and a failed shot waits here for the operator's answer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rig.errors import CameraError, RailError, RigError, SessionError
from rig.profiles import Profile
from rig.tui import messages as msg

log = logging.getLogger("stackrig.tui")

Post = Callable[[msg.RigMessage], object]
# The camera settings the Rig screen shows (under any of their vendor names), in this order.
SHOWN_SETTINGS = (
    ("iso",),
    ("shutterspeed",),
    ("aperture", "f-number"),
    ("imageformat", "imagequality"),
    ("capturetarget",),
)


class RigOwner:
    def __init__(self, profile: Profile, simulate: str | None, post: Post) -> None:
        self.profile, self.simulate, self.post = profile, simulate, post
        self.devices: Any = None
        self.session: Any = None  # the CaptureSession while one runs
        self._jobs: queue.Queue[tuple[str, Callable[[], object]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="rig", daemon=True)
        self._stack = ExitStack()
        self._last_here: float | None = None  # the position last read

    # -- from the app's thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ask("connecting", self._connect)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the rail, end a session resumably, close the devices; wait for that."""
        self.stop()
        self._jobs.put(None)
        self._thread.join(timeout_s)

    def stop(self) -> None:
        """Stop motion now (and a running session with it, resumably)."""
        if self.session is not None:
            self.session.stop_now()
        elif self.devices is not None:
            with contextlib.suppress(RigError):
                self.devices.axis.stop()

    def jog(self, delta_um: float) -> None:
        self._ask(f"jogging {delta_um:+g} um", lambda: self._moving(lambda a: a.move_by(delta_um)),
                  True)  # fmt: skip

    def move_to(self, target_um: float) -> None:
        self._ask(f"moving to {target_um:g} um",
                  lambda: self._moving(lambda a: a.move_to(target_um)), True)  # fmt: skip

    def set_zero(self) -> None:
        self._ask("zeroing", lambda: self._axis().set_zero())

    def unlock(self) -> None:
        self._ask("unlocking", lambda: self.post(msg.Note(self._axis().unlock())))

    def set_camera(self, key: str, value: str) -> None:
        def job() -> None:
            self._settings_camera().set(key, value)
            self.post(msg.Note(f"camera: {key} = {value}"))
            self._camera_state()

        self._ask(f"setting {key} to {value}", job)

    def refresh(self) -> None:
        self._ask("reading the rail", lambda: None, True)

    def shoot(self, plan: Any, captures_root: Path) -> None:
        self._ask("shooting", lambda: self._shoot(plan, captures_root))

    def resume(self, path: Path, extend: dict[str, int] | None = None) -> None:
        """Go on with a session: its missing shots, and ``extend`` more at either end."""
        self._ask("resuming", lambda: self._resume(path, extend or {}))

    @property
    def busy(self) -> bool:
        return self.session is not None

    # -- the owner thread --------------------------------------------------------------------

    def _ask(self, doing: str, job: Callable[[], object], then_look: bool = False) -> None:
        def run() -> None:
            job()
            self._status()
            if then_look:
                self._look()

        self._jobs.put((doing, run))

    def _serve(self) -> None:
        try:
            while (item := self._jobs.get()) is not None:
                doing, job = item
                try:
                    job()
                except RigError as exc:
                    log.warning("%s: %s", doing, exc)
                    self.post(msg.Failed(doing, str(exc)))
                    self._status()
                except Exception as exc:  # a bug: the operator sees one line, the log the rest
                    log.exception("%s failed", doing)
                    self.post(msg.Failed(doing, f"internal error: {exc} (details in the log)"))
        finally:
            self._stack.close()

    def _connect(self) -> None:
        from rig.devices.factory import open_devices

        try:
            self.devices = open_devices(self.profile, self.simulate, self._stack)
        except (RailError, CameraError) as exc:
            self._diagnose("rail" if isinstance(exc, RailError) else "camera", str(exc))
            raise
        self.post(msg.Connected(list(self.devices.said), self._axis_line()))
        self._look()
        if self.devices.settings_camera is not None:
            self._camera_state()

    def _diagnose(self, device: str, error: str) -> None:
        """The doctor's findings for a real device that is missing or refused (a simulated
        one has nothing the doctor could check)."""
        from rig.devices.factory import simulates
        from rig.doctor import findings_for_rig

        if simulates(self.simulate, device):
            return

        lines = []
        for f in findings_for_rig(self.profile, device):
            lines.append(f"{f.status.upper()} {f.title}")
            if f.fix:
                lines.append(f"  fix: {f.fix}")
        self.post(msg.Diagnosis(device, error, lines))

    def _axis_line(self) -> str:
        """What the Rig screen says about the focus axis: protocol, port, limits, backlash."""
        r = self.profile.rail
        axis = self.devices.axis
        link = getattr(axis.driver, "link", None)
        if r.protocol == "lens":
            where = "the camera's focus motor"
        else:
            from rig.devices.factory import simulates

            port = getattr(link, "port", None) or getattr(axis.driver, "port", None) or r.port
            # The simulated controller's pty changes every run: not worth a line of the screen.
            where = "the simulated controller" if simulates(self.simulate, "rail") else port
        s = axis.settings
        lo = "-inf" if s.soft_min_um is None else f"{s.soft_min_um:g}"
        hi = "+inf" if s.soft_max_um is None else f"{s.soft_max_um:g}"
        unlimited = s.soft_min_um is None and s.soft_max_um is None
        limits = "no soft limits" if unlimited else f"soft limits {lo} .. {hi} um"
        return (
            f"focus: {r.protocol} on {where}; {limits}; backlash {s.backlash_um:g} um, "
            f"approach from the {s.approach} side"
        )

    def _axis(self) -> Any:
        if self.devices is None:
            raise RailError("the rail is not connected")
        return self.devices.axis

    def _settings_camera(self) -> Any:
        camera = None if self.devices is None else self.devices.settings_camera
        if camera is None:
            raise CameraError("no camera is connected")
        return camera

    def _camera_state(self) -> None:
        camera = self._settings_camera()
        s = camera.summary()
        parts = [s.model, s.lens or "", f"battery {s.battery}" if s.battery else ""]
        if s.storage_free_bytes is not None:
            parts.append(f"{s.storage_free_bytes / 1e9:.1f} GB free")
        keys = set(camera.config_keys())
        shown = [camera.get(next(k for k in names if k in keys))
                 for names in SHOWN_SETTINGS if keys & set(names)]  # fmt: skip
        self.post(msg.CameraState(", ".join(p for p in parts if p), shown))

    def _moving(self, move: Callable[[Any], object]) -> None:
        """Say the axis is moving (where it started), then move it; _status says where it ended."""
        axis = self._axis()
        self.post(msg.RailStatus(self._last_here, axis.referenced, True))
        move(axis)

    def _status(self) -> None:
        if self.devices is None:
            return
        axis = self.devices.axis
        try:
            here: float | None = axis.position_um()
        except RailError:
            here = None
        self._last_here = here
        self.post(msg.RailStatus(here, axis.referenced, False))

    def _look(self) -> None:
        if self.devices is None:
            return
        try:
            self.post(msg.LiveFrame(self.devices.live_view()))
        except CameraError as exc:
            self.post(msg.LiveFrame(None, str(exc)))

    def _ready(self) -> None:
        devices = self.devices
        if devices is None or devices.camera is None:
            raise CameraError("the camera is not connected")
        if not devices.axis.referenced:
            raise RailError("the rail is not referenced: zero it (z) or home it first")

    def _shoot(self, plan: Any, captures_root: Path) -> None:
        from rig.session.plan import disk_shortfall
        from rig.session.run import new_session

        try:  # refused before a folder is made or the rail moves
            self._ready()
            short = disk_shortfall(plan, self.profile, captures_root)
            if short:
                raise SessionError(f"{short}: free space, or shoot fewer frames")
        except RigError as exc:
            self.post(msg.SessionEnded("refused", str(exc), "", []))
            return
        folder, journal = new_session(self.profile, plan, captures_root)
        self._run(folder, journal)

    def _resume(self, path: Path, extend: dict[str, int]) -> None:
        from rig.session.run import extend_session, open_session

        try:
            self._ready()
            folder, journal = open_session(path, finished=bool(extend))
        except RigError as exc:  # nothing was shot or changed
            self.post(msg.SessionEnded("refused", str(exc), "", []))
            return
        try:
            for end, steps in extend.items():
                added = extend_session(folder, journal, end, steps)
                self.post(msg.Note(f"extended at the {end} end: {len(added)} more shots"))
        except RigError:
            journal.close()
            raise
        self._run(folder, journal)

    def _run(self, folder: Any, journal: Any) -> None:
        from rig.session.capture import SessionStopped, ShotFault
        from rig.session.run import shoot

        devices = self.devices

        def decide(fault: ShotFault) -> str:
            reply: Future[str] = Future()
            self.post(msg.FaultAsked(fault.index, fault.kind, fault.message, fault.choices, reply))
            return reply.result()

        def started(session: Any) -> None:
            self.session = session
            todo = len(session.positions_um) - len(journal.state().saved)
            self.post(msg.SessionStarted(str(folder.path), todo))

        try:
            result = shoot(
                folder,
                journal,
                devices.axis,
                devices.camera,
                before_shot=devices.before_shot,
                on_session=started,
                on_shot=lambda s: self.post(
                    msg.ShotSaved(s.index, s.position_um, [p.name for p in s.files], s.seconds)
                ),
                on_state=lambda state: self.post(msg.StateChanged(state.value)),
                on_coverage=lambda c, picture: self.post(
                    msg.CoverageNow(c.verdict, c.covered, picture)
                ),
                on_preview=lambda image, n: self.post(msg.StackPreview(image, n)),
                on_stacked=lambda done: self.post(_frame_stacked(done)),
                decide=decide,
                decided_by="operator",
            )
        except SessionStopped as exc:
            self.post(msg.SessionEnded(exc.outcome, str(exc), str(folder.path), []))
            return
        except RigError as exc:
            self.post(msg.SessionEnded("error", str(exc), str(folder.path), []))
            return
        finally:
            self.session = None
            journal.close()
        o = result.outcome
        latency = result.last_frame_to_stack_s
        said = f"stacked {len(o.result.accepted)} frames -> {o.outputs.image}"
        if latency is not None:
            said += f" ({latency:.2f} s after the last frame)"
        if o.result.softness:
            said += f"\nWARNING: {o.result.softness}"
        c = o.result.coverage
        extend = {k: v for k, v in (("first", c.extend_first), ("last", c.extend_last)) if v}
        advice = result.extension_advice()
        self.post(msg.SessionEnded("done", said, str(folder.path), advice, extend))


def _frame_stacked(done: Any) -> msg.FrameStacked:
    r = done.report
    if r is None:  # unreadable, or not the stack's size
        return msg.FrameStacked(done.path.name, False, done.problem or "unusable", 0.0, 0.0)
    return msg.FrameStacked(r.name, r.accepted, r.reason or "", r.sharpness, r.confidence)
