"""``stackrig plan``: depth of field, focus step, frame count, duration and disk space.

Usage: ``stackrig plan --profile NAME --depth-mm 5`` prints the depth of field of the profile's
lens or objective by each model that applies (the one the step comes from marked ``*``), the
suggested step (0.75 of it) and the frames a 5 mm deep subject needs, then the plan that would
be shot, how long it takes and how much disk it fills, and warnings (a step larger than the
depth of field, a backlash overshoot past a soft limit, too few frames). ``--magnification``,
``--f-number`` or ``--na`` try other optics without editing the profile; ``--start/--end``
with ``--step`` or ``--count``, or ``--count`` alone (from the current position), plan a
particular run. Nothing moves and no device is opened.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from rig.cli.common import (
    Override,
    UsageError,
    add_command,
    add_overrides,
    add_profile,
    count,
    distance_um,
    finite_float,
    load_profile_with,
    say,
)
from rig.errors import ProfileError
from rig.profiles.schema import Profile
from rig.session.optics import STEP_FRACTION, DepthOfField, depth_of_field, frames_for_depth
from rig.session.plan import MAX_POSITIONS, Estimate, Plan, PlanError, estimate, step_for

OVERRIDES = (
    Override("--magnification", "optics.magnification", "e.g. 2 for 2:1", metavar="M"),
    Override("--f-number", "optics.f_number", "the lens's marked f-number", metavar="N"),
    Override("--na", "optics.numerical_aperture", "an objective's NA", metavar="NA"),
)
SUMMARY = "depth of field, focus step, frames, duration and disk space of a stack"
DETAILS = (
    "Uses the profile's optics, plan and rail; nothing moves. Without --start/--end or --count, "
    "--depth-mm plans a run of that depth from the current position."
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "plan", SUMMARY, DETAILS)
    add_profile(p)
    p.add_argument("--depth-mm", type=finite_float, metavar="D",
                   help="subject depth in mm: frames needed to cover it")  # fmt: skip
    add_overrides(p, OVERRIDES)
    p.add_argument("--start", type=distance_um, metavar="UM", help="first position (um)")
    p.add_argument("--end", type=distance_um, metavar="UM", help="last position (um)")
    p.add_argument("--step", type=distance_um, metavar="UM",
                   help="step (um; default plan.step_um, else the suggested step)")  # fmt: skip
    p.add_argument(
        "--count",
        type=count(1, 100 * MAX_POSITIONS),
        metavar="N",
        help="positions (with --start/--end, or alone: from the current position)",
    )
    p.set_defaults(handler=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    if args.f_number is not None and args.na is not None:
        raise UsageError("give --f-number (a lens) or --na (an objective), not both")
    if args.depth_mm is not None and args.depth_mm < 0:
        raise UsageError(f"--depth-mm {args.depth_mm:g}: give the subject's depth, 0 or more")
    profile = _profile(args)
    try:  # everything is worked out before anything is printed
        dof = depth_of_field(profile.optics)
        plan = _plan(args, profile)
    except (PlanError, ProfileError) as exc:
        raise UsageError(_name_flags(str(exc), args)) from None
    _print_optics(profile, dof)
    if args.depth_mm is not None:
        _print_depth(args.depth_mm, dof, plan)
    if plan is None:
        say("plan: none yet; give --start and --end, --count N, or --depth-mm D")
    else:
        _print_plan(plan, estimate(plan, profile, dof=dof))
    return 0


def _profile(args: argparse.Namespace) -> Profile:
    """The profile with the options applied; a lens option drops the profile's NA and an
    objective option its f-number (a profile has one or the other)."""
    if args.na is None and args.f_number is None:
        profile: Profile = load_profile_with(args, OVERRIDES)
        return profile
    base: Profile = load_profile_with(args, ())
    if args.na is not None:
        base.optics = dataclasses.replace(base.optics, f_number=None)
    else:
        base.optics = dataclasses.replace(base.optics, numerical_aperture=None)
    from rig.profiles import with_overrides

    given = {o.key: getattr(args, o.dest) for o in OVERRIDES if getattr(args, o.dest) is not None}
    try:
        return with_overrides(base, given, source="options")
    except ProfileError as exc:
        raise UsageError(_name_flags(str(exc), args)) from None


def _name_flags(text: str, args: argparse.Namespace) -> str:
    """Name the option the user typed beside the profile key it set."""
    for o in OVERRIDES:
        if getattr(args, o.dest) is not None:
            text = text.replace(f"{o.key} =", f"{o.flag} ({o.key}) =")
    return text


def _plan(args: argparse.Namespace, profile: Profile) -> Plan | None:
    positions = (args.start, args.end, args.count)
    if all(v is None for v in positions):
        if args.depth_mm is not None:  # a run of that depth from here, at the plan's step
            n = frames_for_depth(args.depth_mm * 1000.0, step_for(profile, args.step))
            return Plan.from_profile(profile, count=max(n, 2), step_um=args.step)
        if profile.plan.mode == "start_end" or profile.plan.count is None:
            return None
    return Plan.from_profile(
        profile, start_um=args.start, end_um=args.end, step_um=args.step, count=args.count
    )


# -- output ------------------------------------------------------------------------------------


def _print_optics(profile: Profile, dof: DepthOfField) -> None:
    o = profile.optics
    if o.numerical_aperture is not None:
        n = f", n = {dof.refractive_index:g}" if dof.refractive_index != 1.0 else ""
        aperture = f"NA {o.numerical_aperture:g}{n}"
    else:
        aperture = (
            f"f/{o.f_number:g} (effective f/{dof.effective_f_number:.3g}, "
            f"NA {dof.numerical_aperture:.3g}), circle of confusion {o.coc_um:g} um"
        )
    say(f"optics: magnification {o.magnification:g}, {aperture}, {o.wavelength_nm:g} nm")
    say("depth of field:")
    width = max(len(d.model) for d in dof.models)
    for d in dof.models:
        say(f"  {'*' if d is dof.chosen else ' '} {d.model:<{width}}  {_length(d.um)}")
    say(f"  (* used: {dof.why})")
    for note in dof.notes:
        say(f"  note: {note}")
    say(f"suggested step: {_length(dof.step_um)} ({STEP_FRACTION:g} x the depth of field)")


def _print_depth(depth_mm: float, dof: DepthOfField, plan: Plan | None) -> None:
    depth_um = depth_mm * 1000.0
    line = f"subject {depth_mm:g} mm deep: {dof.frames_for(depth_um)} frames at the suggested step"
    step = plan.step_um if plan is not None and plan.count > 1 else None
    if step is not None and not math.isclose(step, dof.step_um, rel_tol=1e-3):
        line += f" ({frames_for_depth(depth_um, step)} at the plan's {_length(step)})"
    say(line)


def _print_plan(plan: Plan, est: Estimate) -> None:
    where = " (from the current position)" if plan.relative else ""
    shots = f" x {plan.shots_per_position} shots = {plan.frames} frames"
    say(
        f"plan: {plan.first_um:g} -> {plan.last_um:g} um{where}, {plan.direction}, step "
        f"{_length(plan.step_um)}, {plan.count} positions"
        + (shots if plan.shots_per_position > 1 else "")
    )
    back = ", then back to the start" if plan.return_to_start else ""
    say(f"  approach from the {plan.approach} side, settle {plan.settle_s:g} s per position{back}")
    say(
        f"estimate: {_duration(est.duration_s)} (moves {_duration(est.move_s + est.return_s)}, "
        f"settle {_duration(est.settle_s)}, shots {_duration(est.shots_s)})"
    )
    say(
        f"disk: {_bytes(est.disk_bytes)} ({plan.frames} x {_bytes(est.frame_bytes)} per frame, "
        f"{est.frame_source}; stack outputs {_bytes(est.outputs_bytes)})"
    )
    for warning in est.warnings:
        say(f"warning: {warning}")


def _length(um: float) -> str:
    return f"{um / 1000:.4g} mm" if abs(um) >= 10_000 else f"{um:.4g} um"


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _bytes(n: int) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e9 else f"{n / 1e6:.3g} MB"
