"""``stackrig rail ...`` and ``stackrig sim-rail``: drive a rail controller from a shell."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from contextlib import ExitStack
from typing import Any

from rig.cli.common import (
    Override,
    UsageError,
    add_command,
    add_overrides,
    add_profile,
    add_simulate,
    distance_um,
    load_profile_with,
    say,
    terminate_as_interrupt,
)
from rig.devices.rails.registry import PROTOCOLS
from rig.errors import Interrupted, RigError

OVERRIDES = (
    Override("--port", "rail.port", "serial port, e.g. /dev/stackrig-rail or /dev/ttyACM0", str),
    Override("--protocol", "rail.protocol", "controller firmware", str, choices=PROTOCOLS),
    Override(
        "--steps-per-mm",
        "rail.steps_per_mm",
        "motor steps per mm of travel (Sangaboard and Tic need it)",
    ),
    Override("--speed", "rail.speed_mm_s", "speed of moves in mm/s (default 5)", metavar="MM_S"),
    Override(
        "--backlash",
        "rail.backlash_um",
        "approach targets from one side, overshooting by UM (default 0)",
        metavar="UM",
    ),
)
NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.I)
# Without a profile: a plain rail, no settle time, 5 mm/s.
BARE_RAIL = {"rail.speed_mm_s": 5.0, "rail.settle_s": 0.0}
ACTIONS = {
    "status": "connect and print the position",
    "move": "move to UM micrometres (absolute)",
    "jog": "move by UM micrometres (relative)",
    "zero": "make the current position 0",
    "home": "run the controller's homing cycle",
    "stop": "stop any motion (the position is kept, the controller left ready)",
    "unlock": "clear an alarm or lock (GRBL $X; a reset first where the firmware needs one)",
}


def _rail_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The rail options, on ``rail`` and again on each action, so they work before or after it.

    On an action they default to SUPPRESS: an option given before the action is not reset.
    """
    first = len(parser._actions)
    add_profile(parser)
    add_overrides(parser, OVERRIDES)
    add_simulate(parser, "drive the firmware emulator of --protocol on a pseudo-terminal")
    if not top:
        for action in parser._actions[first:]:
            action.default = argparse.SUPPRESS


def add_commands(commands: argparse._SubParsersAction) -> None:
    rail = add_command(
        commands,
        "rail",
        "list, probe and drive a focus rail or stage controller",
        "Positions in micrometres.",
    )
    _rail_options(rail, top=True)
    actions = rail.add_subparsers(dest="rail_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="serial ports, with a guess of what is on each")
    listing.set_defaults(handler=_list)
    probe = actions.add_parser("probe", help="ask what firmware answers on PORT (moves nothing)")
    probe.add_argument("probe_port", metavar="PORT")
    probe.set_defaults(handler=_probe)
    for name, text in ACTIONS.items():
        p = actions.add_parser(name, help=text, description=text)
        if name in ("move", "jog"):
            p.add_argument("amount", type=distance_um, metavar="UM")
            # '-1e3' is a number, not an option (argparse only knows '-5' and '-.5').
            p._negative_number_matcher = NUMBER
        _rail_options(p, top=False)
        p.set_defaults(handler=run_rail)

    sim = add_command(
        commands,
        "sim-rail",
        "start a firmware emulator on a pseudo-terminal and print its path",
        "The drivers and the TUI can then be tried without hardware. Runs until Ctrl-C.",
    )
    sim.add_argument("--protocol", choices=PROTOCOLS, default="grbl")
    sim.set_defaults(handler=run_sim_rail)


def _list(args: argparse.Namespace) -> int:
    from rig.devices.rails import ports

    found = ports.list_serial_ports()
    if not found:
        say("no serial ports found: plug the controller in, or try 'stackrig sim-rail'")
    for p in found:
        say(f"{p.device:24} {p.usb_id:10} {p.description}  {p.guess}".rstrip())
    return 0


def _probe(args: argparse.Namespace) -> int:
    from rig.devices.rails import ports

    result = ports.probe(args.probe_port)
    say(f"{args.probe_port}: {result.protocol} ({result.answer})")
    return 0


def run_rail(args: argparse.Namespace) -> int:
    if not args.profile and not args.protocol:
        raise UsageError(
            "give --port and --protocol, or --profile (find the port and protocol with "
            "'stackrig rail probe PORT')"
        )
    if not (args.profile or args.port or args.simulate):
        raise UsageError("give --port and --protocol, or --profile, or --simulate")
    profile = load_profile_with(args, OVERRIDES, BARE_RAIL)
    with ExitStack() as stack:
        if args.simulate:
            from rig.devices.rails.registry import make_emulator
            from rig.profiles import with_overrides

            emulator = stack.enter_context(make_emulator(profile.rail.protocol))
            profile = with_overrides(profile, {"rail.port": emulator.path}, source="--simulate")
        return _drive(args, profile, zero_first=args.simulate)


def _drive(args: argparse.Namespace, profile: Any, *, zero_first: bool = False) -> int:
    from rig.devices.motion import Rail
    from rig.devices.rails.registry import make_driver

    r = profile.rail
    driver = make_driver(r)
    rail = Rail(driver, profile.motion_settings())
    with terminate_as_interrupt():
        say(f"connected: {rail.connect()}")
        try:
            if zero_first:  # a fresh emulator each command: its power-on position is the zero
                rail.set_zero()
                say("simulated rail: zeroed where it powered on")
            _act(rail, args)
        except KeyboardInterrupt:
            raise _stopped(rail) from None
        finally:
            rail.close()
    return 0


def _act(rail: Any, args: argparse.Namespace) -> None:
    action = args.rail_action
    if action == "move":
        rail.move_to(args.amount)
    elif action == "jog":
        rail.move_by(args.amount)  # waits: the position printed is where the rail stopped
    elif action == "zero":
        rail.set_zero()
    elif action == "home":
        rail.home()
    elif action == "stop":
        rail.stop()
        say("the rail is stopped")
    elif action == "unlock":
        say(rail.unlock())
    say(f"position: {_position(rail)}")


def _position(rail: Any) -> str:
    here = rail.position_um()
    if rail.referenced:
        return f"{here:.1f} um"
    return f"not referenced: unknown until homed or zeroed (the controller reads {here:.1f} um)"


def _stopped(rail: Any) -> Interrupted:
    """Ctrl-C or SIGTERM during a command: stop the motion before anything else."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it
    try:
        rail.stop()
        where = f"the rail was stopped; position: {_position(rail)}"
    except RigError as exc:
        where = f"the stop failed ({exc}): check the rail"
    finally:
        signal.signal(signal.SIGINT, previous)
    return Interrupted(f"interrupted: {where}")


def run_sim_rail(args: argparse.Namespace) -> int:
    from rig.devices.rails.registry import make_emulator

    emulator = make_emulator(args.protocol).start()
    say(f"{args.protocol} emulator listening on {emulator.path}")
    say(f"try: stackrig rail status --port {emulator.path} --protocol {args.protocol}")
    print("Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    emulator.close()
    return 0
