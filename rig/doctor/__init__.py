"""``stackrig doctor``: what stands between this machine and a stack, each with its fix.

:func:`run_checks` runs every check and returns :class:`Finding` values (``.status``,
``.blocking``, ``.title``, ``.fix``, ``.device``); :func:`findings_for_rig` is the short form a
screen calls when the camera or the rail is missing or refused. Nothing moves: serial ports
are asked who they are, the camera is only detected. Importing this loads no hardware library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rig.doctor.checks import (
    FAIL,
    PASS,
    WARN,
    Camera,
    Finding,
    check_cameras,
    check_captures,
    check_gphoto,
    check_groups,
    check_holders,
    check_nodes,
    check_rail,
    check_terminal,
    check_udev,
)
from rig.doctor.system import System

__all__ = ["FAIL", "PASS", "WARN", "Finding", "System", "findings_for_rig", "run_checks"]
AREAS = ("camera", "rail", "session")  # what run_checks(only=...) can be limited to
DEFAULT_FRAMES = 100  # the stack the free space is measured against, without a plan count


def run_checks(
    profile: Any = None,
    *,
    ports: Sequence[str] = (),
    frames: int | None = None,
    only: Sequence[str] = AREAS,
    system: System | None = None,
) -> list[Finding]:
    """Every check, in the order a user fixes them: the camera, the rail, then the session
    (captures folder, terminal). ``profile`` None: the defaults a new profile has."""
    from rig.doctor import system as facts

    system = system or System()
    if profile is None:
        from rig.profiles import Profile

        profile = Profile(name="default")
    user, euid, active, members = system.groups()
    access = check_groups(user, euid, active, members)
    access += check_udev(system.udev_files(), system.gphoto_hwdb())
    out = [f for f in access if f.device is None and any(d in only for d in ("camera", "rail"))]
    if "camera" in only:
        versions, error = facts.gphoto_versions()
        out.append(check_gphoto(versions, error))
        found = None
        if versions is not None:  # without python-gphoto2 there is nothing to detect with
            found, error = facts.cameras()
            out.append(check_cameras(found, error, virtual="VCAMERADIR" in os.environ))
        cams = _camera_nodes(system, found or [])
        out += check_holders(system.processes(with_fds=bool(cams)), [str(p) for p, _ in cams])
        nodes = [system.node(path, f"the camera ({what})", "camera") for path, what in cams]
        out += check_nodes(nodes, user) + [f for f in access if f.device == "camera"]
    if "rail" in only:
        probes = facts.serial_probes(profile.rail, ports)
        out += check_rail(profile.rail.protocol, profile.rail.port, probes)
        nodes = [system.node(Path(p.port), "the rail's port" if p.port == profile.rail.port
                             else "serial port", "rail")
                 for p in probes if p.probed and Path(p.port).exists()]  # fmt: skip
        out += check_nodes(nodes, user) + [f for f in access if f.device == "rail"]
    if "session" in only:
        out.append(_captures(profile, frames))
        out.append(check_terminal(facts.image_renderer()))
    return out


def findings_for_rig(profile: Any, device: str, system: System | None = None) -> list[Finding]:
    """What is wrong with the ``device`` ("camera" or "rail") and how to fix it: the checks of
    that device that did not pass, blocking ones first. For a screen to show when the device
    is missing or refused. It detects and probes (seconds, for a silent serial port): call it
    from a worker thread, with the device closed."""
    if device not in ("camera", "rail"):
        raise ValueError(f"device {device!r}: 'camera' or 'rail'")
    found = [f for f in run_checks(profile, only=(device,), system=system) if f.status != PASS]
    return sorted(found, key=lambda f: not f.blocking)


def _camera_nodes(system: System, cameras: Sequence[Camera]) -> list[tuple[Path, str]]:
    """The device node of each camera libgphoto2 detected or the kernel lists with PTP."""
    nodes = {}
    for rel, what in system.usb_cameras():
        nodes[system.dev / rel] = what
    for c in cameras:
        if c.node is not None:
            nodes[system.dev / c.node] = c.model
    return list(nodes.items())


def _captures(profile: Any, frames: int | None) -> Finding:
    from rig.doctor.system import captures_space
    from rig.paths import captures_dir
    from rig.session.plan import Plan, PlanError, estimate

    root = Path(profile.output.captures_root or captures_dir()).expanduser()
    n = frames or profile.plan.count or DEFAULT_FRAMES
    try:
        plan = Plan.from_profile(profile, count=n)
    except PlanError:  # optics that give no step: the step does not change the disk space
        plan = Plan.from_profile(profile, count=n, step_um=100.0)
    need = estimate(plan, profile)
    problem, free = captures_space(root)
    stack = f"a {plan.frames}-frame stack ({need.frame_source})"
    return check_captures(root, problem, free, need.disk_bytes, stack)
