"""``stackrig doctor [--profile NAME] [--port PORT ...] [--json]``: check this machine for what
stands between it and a stack, with the exact fix for each problem.

Exit status 0 when nothing blocks shooting (warnings may remain), 1 when something does.
Nothing moves: serial ports are asked who they are, the camera is only detected.
"""

from __future__ import annotations

import argparse
import json

from rig.cli.common import add_command, add_profile, count, load_profile_with, nonempty, say

SUMMARY = "check the camera, the rail, permissions and disk space, with the fix for each problem"
DETAILS = (
    "Exit status 1 when something blocks shooting. Nothing moves: serial ports are only asked "
    "who they are."
)
TAGS = {"pass": "ok  ", "warn": "warn", "fail": "FAIL"}


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "doctor", SUMMARY, DETAILS)
    add_profile(p)
    p.add_argument(
        "--port", dest="ports", action="append", default=[], type=nonempty, metavar="PORT",
        help="probe this serial port too (repeatable; ports with a known controller's USB id "
        "and the profile's rail.port are probed anyway)",
    )  # fmt: skip
    p.add_argument("--frames", type=count(1, 100_000), metavar="N",
                   help="measure the free space against a stack of N frames (default: the "
                   "profile's plan.count, else 100)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from rig.doctor import run_checks

    profile = load_profile_with(args, ())
    findings = run_checks(profile, ports=args.ports, frames=args.frames)
    blocking = [f for f in findings if f.blocking]
    if args.json:
        say(json.dumps({
            "ok": not blocking,
            "blocking": len(blocking),
            "warnings": sum(f.status == "warn" for f in findings),
            "findings": [f.as_dict() for f in findings],
        }, indent=2))  # fmt: skip
        return 1 if blocking else 0
    for f in findings:
        say(f"{TAGS.get(f.status, f.status)}  {f.title}")
        if f.fix:
            say(f"      fix: {f.fix}")
    warnings = sum(f.status == "warn" for f in findings)
    if blocking:
        say(f"{len(blocking)} problem(s) block shooting; {warnings} warning(s)")
        return 1
    say(f"nothing blocks shooting; {warnings} warning(s)" if warnings else "all good")
    return 0
