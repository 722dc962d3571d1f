"""``stackrig capture``: shoot a focus stack headless, stacking while it shoots; or resume one.

``stackrig capture --profile NAME [--simulate [all|camera|rail]] [--start UM --end UM [--step UM
| --count N] | --count N] [--output DIR]`` and ``stackrig capture --resume SESSION_DIR``.

Before anything moves or a folder is made, the plan is checked against the rail's limits and
the disk must hold the estimate; before a shot, the rail must be referenced (zeroed or homed).

Exit status: 0 done; 1 failed before anything was shot; 2 usage; 3 stopped part-way (a fault,
a full disk, a rail that restarted): the session folder resumes it; 130 interrupted (Ctrl-C or
SIGTERM: the rail is stopped first), also resumable.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rig.cli.common import (
    Override,
    UsageError,
    add_command,
    add_overrides,
    add_profile,
    add_quiet,
    add_simulate_choice,
    distance_um,
    load_profile_with,
    path_arg,
    say,
    terminate_as_interrupt,
)
from rig.errors import Interrupted, RailError, SessionError
from rig.paths import captures_dir
from rig.profiles.schema import FAULT_POLICIES

EXIT_STOPPED = 3
SUMMARY = "shoot a focus stack (stacking while it shoots), or resume an interrupted one"


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "capture", SUMMARY, __doc__.split("\n\n")[1])
    add_profile(p)
    add_simulate_choice(p)
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
    for end in ("first", "last"):
        p.add_argument(
            f"--extend-{end}",
            type=int,
            metavar="N",
            help=f"with --resume: shoot N more positions beyond the {end} end (one plan step "
            "apart), then re-stack; for a finished session too",
        )
    add_overrides(p, OVERRIDES)
    add_quiet(p)
    p.set_defaults(handler=run_capture)


OVERRIDES = (
    Override(
        "--on-fault",
        "plan.on_fault",
        "when a shot fails: retry it once then stop (default), retry then skip it, or stop",
        str,
        choices=FAULT_POLICIES,
    ),
)


def run_capture(args: argparse.Namespace) -> int:
    from rig.session.capture import SessionStopped

    if args.dry_run and args.resume:
        raise UsageError("--dry-run plans a new run: give it without --resume")
    extend = {"first": args.extend_first, "last": args.extend_last}
    extend = {end: n for end, n in extend.items() if n is not None}
    if extend and not args.resume:
        raise UsageError("--extend-first/--extend-last add to a session: give --resume DIR")
    with ExitStack() as stack:
        if args.resume:
            from rig.session.folder import read_session_file
            from rig.session.run import open_session

            folder, journal = open_session(args.resume, finished=bool(extend))
            stack.callback(journal.close)
            profile = read_session_file(folder).profile()
            if args.on_fault is not None:
                profile.plan.on_fault = args.on_fault
            _extend(folder, journal, extend)
        else:
            profile = _profile(args)
            plan = _plan(args, profile, None)  # checked before any device is touched
            root = args.output or Path(profile.output.captures_root or captures_dir())
            if not args.dry_run:
                _check_disk(plan, profile, root)
        devices = _open(stack, profile, args, camera=not args.dry_run)
        axis = devices.axis
        if args.dry_run:
            return _dry_run(axis, _from_here(args, profile, plan, axis), args)
        _require_referenced(axis)
        if not args.resume:
            plan = _from_here(args, profile, plan, axis)
            from rig.session.run import new_session

            folder, journal = new_session(profile, plan, root)
            stack.callback(journal.close)
        say(f"session: {folder.path}", err=True)
        try:
            with terminate_as_interrupt():
                result = _shoot(folder, journal, devices, profile.plan.on_fault, args.quiet)
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
    latency = result.last_frame_to_stack_s
    said = "" if latency is None else f"; last frame on disk to stack {latency:.2f} s"
    say(
        f"stacked {len(o.result.accepted)} frames ({result.shot} shot now, {result.restacked} from "
        f"before) -> {o.outputs.image}{said}"
    )
    say(f"coverage: {o.result.coverage.verdict}")
    if o.result.softness:
        say(f"warning: {o.result.softness}", err=True)
    for line in result.extension_advice():
        say(f"  to extend: {line}")
    if result.note:
        say(result.note, err=True)
    return 0


def _profile(args: argparse.Namespace) -> Any:
    if args.simulate and not args.profile:
        args.profile = "simulated"  # the simulated rig's own profile
    return load_profile_with(args, OVERRIDES, {})


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


def _open(stack: ExitStack, profile: Any, args: argparse.Namespace, camera: bool) -> Any:
    from rig.devices.factory import open_devices

    devices = open_devices(profile, args.simulate, stack, camera=camera)
    for line in devices.said:
        say(line, err=True)
    return devices


def _require_referenced(axis: Any) -> None:
    """An absolute plan on a rail that does not know where it is would shoot the wrong range."""
    if not axis.referenced:
        raise RailError(
            "the rail is not referenced (it restarted or was never zeroed), so the planned "
            "positions mean nothing yet: move it to a known point and zero it ('stackrig rail "
            "zero'), or home it, then start again"
        )


def _extend(folder: Any, journal: Any, extend: dict[str, int]) -> None:
    from rig.session.run import extend_session

    for end, steps in extend.items():
        try:
            added = extend_session(folder, journal, end, steps)
        except SessionError as exc:
            raise UsageError(str(exc)) from None
        say(f"extended at the {end} end: {', '.join(f'{p:.1f}' for p in added)} um", err=True)


def _check_disk(plan: Any, profile: Any, root: Path) -> None:
    """The frames and the stack must fit, before a folder is made or the rail moves."""
    from rig.session.plan import disk_shortfall

    short = disk_shortfall(plan, profile, root)
    if short:
        raise SessionError(f"{short}: free space or choose another folder with --output")


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


def _shoot(folder: Any, journal: Any, devices: Any, on_fault: str, quiet: bool) -> Any:
    from rig.progress import Progress
    from rig.session.capture import fault_policy
    from rig.session.run import shoot

    sessions: list[Any] = []
    bar: list[Progress] = []

    def progress(shot: Any) -> None:
        if quiet:
            return
        if not bar:  # the first shot: what this run shoots is known (a resume shoots less)
            bar.append(Progress(len(sessions[0].todo), "shots"))
        bar[0].step(f"shot {shot.index} at {shot.position_um:.1f} um")

    try:
        return shoot(
            folder,
            journal,
            devices.axis,
            devices.camera,
            before_shot=devices.before_shot,
            on_shot=progress,
            on_session=sessions.append,
            decide=fault_policy(on_fault),
        )
    finally:
        if bar:
            bar[0].close()
