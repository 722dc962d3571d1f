"""Open the devices a profile names, real or simulated: the one place that chooses.

``simulate`` is None (all real), ``"all"`` (the simulated rig: the profile's firmware emulator,
or a simulated lens motor for ``protocol = "lens"``, and libgphoto2's virtual camera),
``"camera"`` (a real rail, the virtual camera showing the subject at the rail's reported
position) or ``"rail"`` (the emulator, a real camera). Everything opened is closed by the
``ExitStack`` the caller passes, in reverse order, whatever happens.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.devices.motion import Rail
from rig.errors import RailError
from rig.profiles import Profile

SIMULATE = ("all", "camera", "rail")


@dataclass
class Devices:
    axis: Rail
    camera: Any  # has capture(folder) -> list[Path]; None when not asked for
    before_shot: Callable[[int], object] | None = None  # the simulated rig's frame update
    said: list[str] = field(default_factory=list)  # what each device said on connecting
    simulated: Any = None  # the SimulatedRig, if any


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
    sim_rail = simulate in ("all", "rail")
    sim_camera = simulate in ("all", "camera")
    rig = None
    if sim_camera or (sim_rail and not lens):
        from rig.simrig.rig import SimulatedRig

        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stackrig-sim-")))
        protocol = profile.rail.protocol if sim_rail and not lens else None
        rig = stack.enter_context(
            SimulatedRig(protocol, work, steps_per_mm=profile.rail.steps_per_mm)
        )
    said: list[str] = []
    shooter = None
    real_camera = None
    if camera or (lens and not sim_rail):
        if sim_camera:
            shooter = _simulated_camera(stack, rig, said)
        else:
            real_camera = _connect_camera(stack, profile, said)
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
    return Devices(axis, shooter if camera else None, before, said, rig)


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


def _connect_camera(stack: ExitStack, profile: Profile | None, said: list[str]) -> Any:
    from rig.devices.gphoto import GPhotoCamera

    model = (profile.camera.model or None) if profile is not None else None
    port = profile.camera.port if profile is not None else None
    camera = GPhotoCamera(model=model, port=port)
    said.append(f"camera: {camera.connect()}")
    stack.callback(camera.close)
    return camera


def _simulated_camera(stack: ExitStack, rig: Any, said: list[str]) -> Any:
    import os
    import sys

    from rig.simrig.camera import SimulatedCamera

    # The virtual camera runs in this process, so it serves about 26 shots: enough for a
    # demonstration; the simulated camera (same frames, no PTP) serves longer runs.
    if "gphoto2" in sys.modules:
        said.append("camera: simulated (the virtual camera was loaded before the rig)")
        return SimulatedCamera(rig)
    os.environ["VCAMERADIR"] = str(rig.vcamera_dir)
    camera = _connect_camera(stack, None, said)
    return _Limited(_Downloads(camera, True), SimulatedCamera(rig), said)


class _Limited:
    """The virtual camera for its first shots, then the simulated camera, saying so."""

    def __init__(self, virtual: Any, fallback: Any, said: list[str]) -> None:
        from rig.simrig.camera import VIRTUAL_CAMERA_SHOTS

        self.virtual, self.fallback, self.left = virtual, fallback, VIRTUAL_CAMERA_SHOTS

    def capture(self, folder: Path) -> list[Path]:
        self.left -= 1
        files: list[Path] = (self.virtual if self.left >= 0 else self.fallback).capture(folder)
        return files


class _Downloads:
    """A camera as the session shoots it: every shot downloaded, the camera's copy deleted or
    kept as the profile says."""

    def __init__(self, camera: Any, delete_after: bool | None) -> None:
        self.camera, self.delete_after = camera, delete_after

    def capture(self, folder: Path) -> list[Path]:
        files: list[Path] = self.camera.capture(folder, delete_after=self.delete_after)
        return files
