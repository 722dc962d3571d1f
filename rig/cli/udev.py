"""``stackrig udev rule --port PORT [--name NAME]`` and ``stackrig udev install [--dry-run]``:
the camera and the rail without root, through the rules in udev/.

``rule`` prints a rule that gives one adapter a link of its own (by its serial number, or by the
USB port for adapters without one, such as a CH340). ``install`` copies the shipped rules into
/etc/udev/rules.d (with sudo when not root) and makes udev apply them; ``--dry-run`` shows
exactly what it would write and run, and changes nothing.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from rig.cli.common import add_command, nonempty, path_arg, say
from rig.doctor.udev import DEFAULT_LINK, RULES_DIR, UdevError

GROUPS_NOTE = (
    "on a rig used without a desktop login (headless, SSH), also: sudo usermod -aG "
    "plugdev,dialout $USER, then log out and in again"
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    udev = add_command(commands, "udev", "rules for udev: the camera and the rail without root")
    actions = udev.add_subparsers(dest="udev_action", metavar="ACTION", required=True)
    text = "print a rule giving one serial adapter a link of its own (/dev/NAME)"
    rule = actions.add_parser("rule", help=text, description=text)
    rule.add_argument("--port", required=True, type=nonempty,
                      help="the adapter's port, e.g. /dev/ttyUSB0")  # fmt: skip
    rule.add_argument("--name", default=DEFAULT_LINK, type=_link_name,
                      help=f"the link to make: /dev/NAME (default {DEFAULT_LINK})")  # fmt: skip
    rule.add_argument("--sysfs", type=path_arg, default=Path("/sys"), help=argparse.SUPPRESS)
    rule.set_defaults(handler=run_rule)
    text = f"install the shipped rules into {RULES_DIR} and reload udev"
    install = actions.add_parser("install", help=text, description=text)
    install.add_argument("--dry-run", action="store_true",
                         help="show what would be written and run; change nothing")  # fmt: skip
    install.add_argument("--rules-dir", type=path_arg, default=RULES_DIR, metavar="DIR",
                         help=f"where to install (default {RULES_DIR})")  # fmt: skip
    install.set_defaults(handler=run_install)


def _link_name(text: str) -> str:
    from rig.doctor.udev import check_link_name

    try:
        return check_link_name(text)
    except UdevError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--name {text!r}: ")) from None


def run_rule(args: argparse.Namespace) -> int:
    from rig.doctor.udev import find_adapter, pinned_rule

    say(pinned_rule(find_adapter(args.port, args.sysfs), args.name), end="")
    return 0


def run_install(args: argparse.Namespace) -> int:
    from rig.doctor.udev import install_plan, shipped_rules

    plan = install_plan(args.rules_dir)
    if not plan.writes:
        say(f"stackrig's udev rules are installed and current in {args.rules_dir}: nothing to do")
        return 0
    source = shipped_rules()
    verb = "would write" if args.dry_run else "writes"
    for f in plan.writes:
        state = "new" if f.state == "missing" else "replaces a different version"
        say(f"{verb} {f.path} ({state}, {len(source[f.name].splitlines())} lines)")
    say("would run:" if args.dry_run else "runs:")
    for line in plan.lines():
        say(f"  {line}")
    if args.dry_run:
        for f in plan.writes:
            say(f"\n--- {f.path} ---")
            say(source[f.name], end="")
        say("\ndry run: nothing was changed")
        say(GROUPS_NOTE)
        return 0
    for command in plan.commands:
        _run(command, plan.commands)
    say("installed: replug the camera and the rail controller")
    say(GROUPS_NOTE)
    return 0


def _run(command: list[str], commands: list[list[str]]) -> None:
    line = shlex.join(command)
    try:
        done = subprocess.run(command, stdin=None, check=False)
    except OSError as exc:
        raise UdevError(f"'{line}' could not run: {exc.strerror or exc}") from None
    if done.returncode == 0:
        return
    said = f"'{line}' failed (exit {done.returncode}, its message is above)"
    if "control" in command:
        installed = ", ".join(c[-1] for c in commands if "install" in c)
        raise UdevError(
            f"{said}: the rules are installed ({installed}), but udev was not told to reload. "
            "Is systemd-udevd running (not in most containers)? They take effect when it "
            "starts, or run 'sudo udevadm control --reload && sudo udevadm trigger'"
        )
    raise UdevError(f"{said}: nothing after it was run")
