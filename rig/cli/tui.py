"""``stackrig tui`` (and ``stackrig`` alone): the terminal UI, the operator's cockpit.

``stackrig [--simulate [all|camera|rail]] [--profile NAME] [--output DIR]``: with ``--simulate``
and no profile, the simulated rig's own profile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.cli.common import (
    UsageError,
    add_command,
    add_profile,
    add_simulate_choice,
    load_profile_with,
    path_arg,
)

SUMMARY = "the terminal UI: jog, plan, shoot and watch the stack build"


def add_options(p: argparse.ArgumentParser) -> None:
    add_simulate_choice(p)
    p.add_argument("--output", type=path_arg, metavar="DIR", help="captures folder")


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "tui", SUMMARY, __doc__.split("\n\n")[1])
    add_profile(p)
    add_options(p)
    p.set_defaults(handler=run_tui)


def run_tui(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the terminal UI needs a terminal; for scripts use 'stackrig capture'")
    if args.simulate and not args.profile:
        args.profile = "simulated"
    profile = load_profile_with(args, (), {})
    from rig.paths import captures_dir
    from rig.profiles import find_profile
    from rig.tui.app import run_app

    root = args.output or Path(profile.output.captures_root or captures_dir())
    run_app(profile, args.simulate, root, find_profile(args.profile) if args.profile else None)
    return 0
