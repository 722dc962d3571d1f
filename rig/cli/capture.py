"""``stackrig capture``: shoot a focus stack headless, stacking while it shoots; or resume one.

``stackrig capture --profile NAME [--simulate] [--start UM --end UM [--step UM | --count N] |
--count N] [--output DIR]`` and ``stackrig capture --resume SESSION_DIR [--simulate]``.

Exit status: 0 done; 1 failed before anything was shot; 2 usage; 3 stopped part-way (a fault,
a rail that restarted): the session folder resumes it; 130 interrupted (Ctrl-C or SIGTERM: the
rail is stopped first), also resumable.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rig.cli.common import (
    UsageError,
    add_command,
    add_profile,
    add_quiet,
    add_simulate,
    distance_um,
    load_profile_with,
    path_arg,
    say,
    terminate_as_interrupt,
)
from rig.errors import Interrupted

EXIT_STOPPED = 3
SUMMARY = "shoot a focus stack (stacking while it shoots), or resume an interrupted one"


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "capture", SUMMARY, __doc__.split("\n\n")[1])
    add_profile(p)
    add_simulate(p, "the simulated rig: the profile's firmware emulator and the virtual camera")
    p.add_argument("--start", type=distance_um, metavar="UM", help="first position")
    p.add_argument("--end", type=distance_um, metavar="UM", help="last position")
    p.add_argument("--step", type=distance_um, metavar="UM", help="distance between shots")
    p.add_argument("--count", type=int, metavar="N", help="number of positions")
    p.add_argument("--output", type=path_arg, metavar="DIR", help="captures folder")
    p.add_argument("--resume", type=path_arg, metavar="SESSION_DIR", help="continue a session")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="move the rail through the whole plan (approach, settle, limits), shoot nothing",
    )
    add_quiet(p)
    p.set_defaults(handler=run_capture)


def run_capture(args: argparse.Namespace) -> int:
    from rig.session.capture import SessionStopped

    if args.dry_run and args.resume:
        raise UsageError("--dry-run plans a new run: give it without --resume")
    with ExitStack() as stack:
        if args.resume:
            from rig.session.run import open_session

            folder, journal = open_session(args.resume)
            stack.callback(journal.close)
            from rig.session.folder import read_session_file

            profile = read_session_file(folder).profile()
        else:
            profile = _profile(args)
            plan = _plan(args, profile, None)  # checked before any device is touched
        if args.dry_run:
            axis = _axis(stack, profile, args)[0]
            return _dry_run(axis, _from_here(args, profile, plan, axis), args)
        axis, camera, before_shot = _devices(stack, profile, args)
        if not args.resume:
            plan = _from_here(args, profile, plan, axis)
            from rig.paths import captures_dir
            from rig.session.run import new_session

            root = args.output or Path(profile.output.captures_root or captures_dir())
            folder, journal = new_session(profile, plan, root)
            stack.callback(journal.close)
        say(f"session: {folder.path}", err=True)
        try:
            with terminate_as_interrupt():
                result = _shoot(folder, journal, axis, camera, before_shot, args.quiet)
        except KeyboardInterrupt:
            axis.stop()
            journal.append("session_finished", outcome="aborted")
            raise Interrupted(
                f"interrupted: the rail was stopped; resume with 'stackrig capture --resume "
                f"{folder.path}'"
            ) from None
        except SessionStopped as exc:
            say(f"stackrig: stopped: {exc}", err=True)
            return EXIT_STOPPED
    o = result.outcome
    say(
        f"stacked {len(o.result.accepted)} frames ({result.shot} shot now, {result.restacked} from "
        f"before) -> {o.outputs.image}; last frame to result {o.last_frame_to_result_s:.2f} s"
    )
    if result.note:
        say(result.note, err=True)
    return 0


def _profile(args: argparse.Namespace) -> Any:
    if args.simulate and not args.profile:
        args.profile = "simulated"  # the simulated rig's own profile
    return load_profile_with(args, (), {})


def _plan(args: argparse.Namespace, profile: Any, here_um: float | None) -> Any:
    from rig.session.plan import Plan

    try:
        return Plan.from_profile(
            profile,
            start_um=args.start,
            end_um=args.end,
            step_um=args.step,
            count=args.count,
            here_um=here_um,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _from_here(args: argparse.Namespace, profile: Any, plan: Any, axis: Any) -> Any:
    """One-point mode starts where the rail is: known only once it is connected."""
    return _plan(args, profile, axis.position_um()) if plan.relative else plan


def _dry_run(axis: Any, plan: Any, args: argparse.Namespace) -> int:
    """Every planned position reached as the shoot would reach it; no camera, no folder."""
    start = time.monotonic()
    try:
        with terminate_as_interrupt():
            for n, position in enumerate(plan.positions_um, 1):
                axis.move_to(position)
                if not args.quiet:
                    say(f"position {n}/{plan.count}: {axis.position_um():.1f} um", err=True)
            if plan.return_to_start:
                axis.move_to(plan.positions_um[0])
    except KeyboardInterrupt:
        axis.stop()
        raise Interrupted("interrupted: the rail was stopped; nothing was shot") from None
    say(
        f"dry run: {plan.count} positions reached ({plan.first_um:.1f} -> {plan.last_um:.1f} um) "
        f"in {time.monotonic() - start:.1f} s; nothing was shot"
    )
    return 0


def _axis(stack: ExitStack, profile: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """The focus axis, connected (the simulated rig's, with --simulate); closed at the end."""
    from rig.devices.motion import Rail
    from rig.devices.rails.registry import make_driver

    rig = None
    port = None
    if args.simulate:
        from rig.simrig.rig import SimulatedRig

        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stackrig-sim-")))
        rig = stack.enter_context(
            SimulatedRig(profile.rail.protocol, work, steps_per_mm=profile.rail.steps_per_mm)
        )
        port = rig.port
    axis = Rail(make_driver(profile.rail, port), profile.motion_settings())
    say(f"rail: {axis.connect()}", err=True)
    stack.callback(axis.close)
    if rig is not None:
        axis.set_zero()  # a fresh emulator: its power-on position is the zero
    return axis, rig


def _devices(stack: ExitStack, profile: Any, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The focus axis and the camera, connected; closed when the command ends."""
    axis, rig = _axis(stack, profile, args)
    if rig is not None:
        return axis, _simulated_camera(stack, rig), rig.before_shot
    return axis, _camera(stack, profile), None


def _simulated_camera(stack: ExitStack, rig: Any) -> Any:
    from rig.simrig.camera import SimulatedCamera

    # The virtual camera runs in this process, so it serves about 26 shots: enough for a
    # demonstration; the simulated camera (same frames, no PTP) serves longer runs.
    if "gphoto2" in sys.modules:
        say("camera: simulated (the virtual camera was loaded before the rig)", err=True)
        return SimulatedCamera(rig)
    os.environ["VCAMERADIR"] = str(rig.vcamera_dir)
    camera = _camera(stack, None)
    return _Limited(camera, SimulatedCamera(rig))


class _Limited:
    """The virtual camera for its first shots, then the simulated camera, saying so."""

    def __init__(self, virtual: Any, fallback: Any) -> None:
        from rig.simrig.camera import VIRTUAL_CAMERA_SHOTS

        self.virtual, self.fallback, self.left = virtual, fallback, VIRTUAL_CAMERA_SHOTS

    def capture(self, folder: Path) -> list[Path]:
        if self.left == 0:
            say("camera: the virtual camera's store is spent; the simulated camera takes over")
        self.left -= 1
        return (self.virtual if self.left >= 0 else self.fallback).capture(folder)


def _camera(stack: ExitStack, profile: Any) -> Any:
    from rig.devices.gphoto import GPhotoCamera

    model = profile.camera.model if profile is not None else None
    camera = GPhotoCamera(model=model)
    say(f"camera: {camera.connect()}", err=True)
    stack.callback(camera.close)
    delete = profile.camera.delete_after_download if profile is not None else True
    return _Downloads(camera, delete)


class _Downloads:
    def __init__(self, camera: Any, delete_after: bool) -> None:
        self.camera, self.delete_after = camera, delete_after

    def capture(self, folder: Path) -> list[Path]:
        files: list[Path] = self.camera.capture(folder, delete_after=self.delete_after)
        return files


def _shoot(folder: Any, journal: Any, axis: Any, camera: Any, before_shot: Any, quiet: bool) -> Any:
    from rig.session.run import shoot

    planned: list[int] = []  # the session's own plan: a resumed one comes from session.toml

    def progress(shot: Any) -> None:
        if not quiet:
            say(f"shot {shot.index}/{planned[0]} at {shot.position_um:.1f} um", err=True)

    return shoot(
        folder,
        journal,
        axis,
        camera,
        before_shot=before_shot,
        on_shot=progress,
        on_session=lambda session: planned.append(len(session.positions_um)),
    )
