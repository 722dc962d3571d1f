"""`stackrig rail ...` and `stackrig sim-rail`: try the drivers from a shell."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from rig.devices.rails.registry import PROTOCOLS

if TYPE_CHECKING:
    from rig.profile_schema import Profile

ACTIONS = ("status", "move", "jog", "zero", "home", "stop")


def add_commands(commands: argparse._SubParsersAction) -> None:
    rail = commands.add_parser(
        "rail",
        help="list, probe and drive a focus rail or stage controller",
        description="Talk to a rail controller: 'rail list', 'rail probe PORT', or "
        "'rail --port P --protocol X ACTION' with ACTION one of status, move UM, jog UM, "
        "zero, home, stop. Positions in micrometres.",
    )
    rail.add_argument(
        "--profile",
        help="take the rail settings from this rig profile; options given here override it",
    )
    rail.add_argument("--port", help="serial port, e.g. /dev/stackrig-rail or /dev/ttyACM0")
    rail.add_argument("--protocol", choices=PROTOCOLS, help="controller firmware")
    rail.add_argument(
        "--steps-per-mm",
        type=float,
        default=None,
        help="motor steps per mm of travel (Sangaboard and Tic need it)",
    )
    rail.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="MM_S",
        help="speed of moves in mm/s (default 5)",
    )
    rail.add_argument(
        "--backlash",
        type=float,
        default=None,
        metavar="UM",
        help="approach targets from below, overshooting by UM (default 0)",
    )
    rail.add_argument("action", help="list | probe PORT | " + " | ".join(ACTIONS))
    rail.add_argument("value", nargs="?", help="PORT for probe; micrometres for move and jog")
    rail.set_defaults(handler=run_rail)

    sim = commands.add_parser(
        "sim-rail",
        help="start a firmware emulator on a pseudo-terminal and print its path",
        description="Start an emulated controller on a pseudo-terminal, so the drivers and the "
        "TUI can be tried without hardware. Runs until Ctrl-C.",
    )
    sim.add_argument("--protocol", choices=PROTOCOLS, default="grbl")
    sim.set_defaults(handler=run_sim_rail)


def run_rail(args: argparse.Namespace) -> int:
    from rig.devices.rails import ports

    if args.action == "list":
        found = ports.list_serial_ports()
        if not found:
            print("no serial ports found: plug the controller in, or try 'stackrig sim-rail'")
            return 0
        for p in found:
            print(f"{p.device:24} {p.usb_id:10} {p.description}  {p.guess}".rstrip())
        return 0
    if args.action == "probe":
        port = args.value or args.port
        if not port:
            return _usage("rail probe needs a PORT")
        result = ports.probe(port)
        print(f"{port}: {result.protocol} ({result.answer})")
        return 0
    if args.action not in ACTIONS:
        return _usage(f"unknown rail action {args.action!r}: list, probe, {', '.join(ACTIONS)}")
    if not args.profile and not (args.port and args.protocol):
        return _usage(
            "give --port and --protocol, or --profile (find the port and protocol with "
            "'stackrig rail probe PORT')"
        )
    return _drive(args, _profile(args))


def _profile(args: argparse.Namespace) -> Profile:
    """The named profile (or a bare one), with every option given here taking precedence."""
    from dataclasses import replace

    from rig.profile_schema import Profile, RailSection

    if args.profile:
        from rig.profiles import find_profile, load_profile

        profile = load_profile(find_profile(args.profile))
    else:  # no profile: a plain rail, no settle, 5 mm/s
        profile = Profile(name="command line", rail=RailSection(speed_mm_s=5.0, settle_s=0.0))
    given = {"port": args.port, "protocol": args.protocol, "steps_per_mm": args.steps_per_mm,
             "speed_mm_s": args.speed, "backlash_um": args.backlash}  # fmt: skip
    rail = replace(profile.rail, **{k: v for k, v in given.items() if v is not None})
    return replace(profile, rail=rail)


def _drive(args: argparse.Namespace, profile: Profile) -> int:
    from rig.devices.motion import Rail
    from rig.devices.rails.registry import make_driver

    r = profile.rail
    driver = make_driver(r.protocol, r.port, steps_per_mm=r.steps_per_mm, speed_mm_s=r.speed_mm_s)
    rail = Rail(driver, profile.motion_settings())
    print(f"connected: {rail.connect()}")
    try:
        if args.action in ("move", "jog"):
            if args.value is None:
                return _usage(f"rail {args.action} needs a distance in micrometres")
            amount = float(args.value)
            rail.move_to(amount) if args.action == "move" else rail.jog(amount)
        elif args.action == "zero":
            rail.set_zero()
        elif args.action == "home":
            rail.home()
        elif args.action == "stop":
            rail.stop()
        print(f"position: {rail.position_um():.1f} um")
    finally:
        rail.close()
    return 0


def run_sim_rail(args: argparse.Namespace) -> int:
    from rig.devices.rails.registry import make_emulator

    emulator = make_emulator(args.protocol).start()
    print(f"{args.protocol} emulator listening on {emulator.path}")
    print(f"try: stackrig rail --port {emulator.path} --protocol {args.protocol} status")
    print("Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    emulator.close()
    return 0


def _usage(message: str) -> int:
    print(f"stackrig rail: error: {message}", file=sys.stderr)
    return 2
