"""Open the devices a profile names, real or simulated: the one place that chooses.

``simulate`` is None (all real), ``"all"`` (the simulated rig: the profile's firmware emulator,
or a simulated lens motor for ``protocol = "lens"``, and libgphoto2's virtual camera),
``"camera"`` (a real rail, the virtual camera showing the subject at the rail's reported
position) or ``"rail"`` (the emulator, a real camera). Everything opened is closed by the
``ExitStack`` the caller passes, in reverse order, whatever happens.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.devices.motion import Rail
from rig.errors import CameraError, RailError
from rig.profiles import Profile

SIMULATE = ("all", "camera", "rail")
log = logging.getLogger("stackrig.devices")


@dataclass
class Devices:
    axis: Rail
    camera: Any  # has capture(folder) -> list[Path]; None when not asked for
    before_shot: Callable[[int], object] | None = None  # the simulated rig's frame update
    said: list[str] = field(default_factory=list)  # what each device said on connecting
    simulated: Any = None  # the SimulatedRig, if any
    real_camera: Any = None  # the connected camera (settings, live view), when not simulated
    settings_camera: Any = None  # whose settings the operator sees: the real or virtual camera

    def live_view(self) -> Any:
        """What the camera sees now, RGB uint8: the camera's live view, or on the simulated
        rig the subject at the carriage's position. CameraError when the camera has none."""
        import cv2  # not at import: the command tunes the process before OpenCV loads
        import numpy as np

        if self.simulated is not None and self.real_camera is None:
            rig = self.simulated
            return rig.subject.frame(rig.carriage_um())
        if self.real_camera is None:
            raise CameraError("no camera is connected: there is no live view")
        data = np.frombuffer(self.real_camera.preview(), np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise CameraError("the camera's live view frame could not be decoded")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def simulates(simulate: str | None, device: str) -> bool:
    """Whether ``simulate`` (None, "all", "camera" or "rail") simulates ``device`` ("camera" or
    "rail")."""
    return simulate in ("all", device)


def open_devices(
    profile: Profile, simulate: str | None, stack: ExitStack, *, camera: bool = True
) -> Devices:
    """Connect the focus axis (and the camera, unless ``camera`` is False and the axis does
    not need it: a lens is driven through the camera)."""
    if simulate is not None and simulate not in SIMULATE:
        raise ValueError(f"simulate {simulate!r}: one of {', '.join(SIMULATE)}")
    lens = profile.rail.protocol == "lens"
    if lens and simulate == "camera":
        raise RailError(
            "lens focus is driven through the camera, so the camera cannot be simulated with a "
            "real lens: use --simulate (all) or no --simulate"
        )
    sim_rail, sim_camera = simulates(simulate, "rail"), simulates(simulate, "camera")
    rig = None
    if sim_camera or (sim_rail and not lens):
        from rig.simrig.rig import SimulatedRig

        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stackrig-sim-")))
        protocol = profile.rail.protocol if sim_rail and not lens else None
        rig = stack.enter_context(
            SimulatedRig(protocol, work, steps_per_mm=profile.rail.steps_per_mm)
        )
    said: list[str] = []
    shooter = real_camera = settings = None
    if camera or (lens and not sim_rail):
        if sim_camera:
            shooter = _simulated_camera(stack, rig, said)
            settings = shooter.camera
        else:
            real_camera = settings = _connect_camera(stack, profile, said)
            shooter = _Downloads(real_camera, profile.camera.delete_after_download)
    axis = _axis(stack, profile, rig, sim_rail, real_camera)
    said.insert(0, f"rail: {axis.connect()}")
    stack.callback(axis.close)
    if rig is not None and rig.emulator is not None:
        axis.set_zero()  # a fresh emulator: its power-on position is the zero
        said.insert(1, "rail: simulated, zeroed where it powered on")
    if rig is not None and rig.emulator is None and rig.where is None:
        rig.where = axis.position_um  # the subject follows the real rail
    before = rig.before_shot if (rig is not None and sim_camera) else None
    return Devices(axis, shooter if camera else None, before, said, rig, real_camera, settings)


def _axis(stack: ExitStack, profile: Profile, rig: Any, sim_rail: bool, real_camera: Any) -> Rail:
    r = profile.rail
    if r.protocol != "lens":
        from rig.devices.rails.registry import make_driver

        return Rail(make_driver(r, rig.port if sim_rail else None), profile.motion_settings())
    from rig.devices.lens_focus import LensFocusDriver

    if r.um_per_step is None:
        raise RailError(
            "lens focus needs rail.um_per_step (the focus shift of one step): calibrate it "
            "for this lens and magnification (see docs/rails.md)"
        )
    if sim_rail:
        from rig.simrig.lens import SimulatedLens

        lens = SimulatedLens(r.um_per_step, r.step_size)
        if rig is not None:
            rig.where = lens.focus_um  # the subject is rendered where the lens focuses
        config: Any = lens
    else:
        from rig.devices.camera_focus import CameraSettings

        config = CameraSettings(real_camera)
    driver = LensFocusDriver(config, um_per_step=r.um_per_step, step_size=r.step_size)
    return Rail(driver, profile.motion_settings())


def _connect_camera(
    stack: ExitStack, profile: Profile | None, said: list[str], env: dict[str, str] | None = None
) -> Any:
    """The camera in a process of its own: a hung libgphoto2 call is killed, not waited on."""
    from rig.devices.camera_process import CameraProcess

    model = (profile.camera.model or None) if profile is not None else None
    port = profile.camera.port if profile is not None else None
    camera = CameraProcess(model=model, port=port, env=env)
    stack.callback(camera.close)
    said.append(f"camera: {camera.connect()}")
    return camera


def _simulated_camera(stack: ExitStack, rig: Any, said: list[str]) -> Any:
    """libgphoto2's virtual camera serving the rig's frames through the real PTP driver; its
    libgphoto2 settings file in the rig's folder, not the user's."""
    env = {"VCAMERADIR": str(rig.vcamera_dir), "XDG_CONFIG_HOME": str(rig.vcamera_dir.parent)}
    camera = _connect_camera(stack, None, said, env)
    return _Renewed(camera)


class _Renewed:
    """The virtual camera serves about 26 captures per process (a counter in libgphoto2's
    vcamera.c that deleting files does not lift): a fresh process before it runs out."""

    def __init__(self, camera: Any) -> None:
        from rig.simrig.camera import VIRTUAL_CAMERA_SHOTS

        self.camera, self.every = camera, VIRTUAL_CAMERA_SHOTS

    def capture(self, folder: Path) -> list[Path]:
        if self.camera.captures >= self.every:
            log.info("restarting the virtual camera's process (%d captures)", self.every)
            self.camera.restart()
        files: list[Path] = self.camera.capture(folder, delete_after=False)
        return files


class _Downloads:
    """A camera as the session shoots it: every shot downloaded, the camera's copy deleted or
    kept as the profile says."""

    def __init__(self, camera: Any, delete_after: bool | None) -> None:
        self.camera, self.delete_after = camera, delete_after

    def capture(self, folder: Path) -> list[Path]:
        files: list[Path] = self.camera.capture(folder, delete_after=self.delete_after)
        return files
