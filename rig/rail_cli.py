"""`stackrig rail ...` and `stackrig sim-rail`: try the drivers from a shell."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from rig.devices.rails.registry import PROTOCOLS

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
    settings = _rail_settings(args)
    if not settings.get("port") or not settings.get("protocol"):
        return _usage(
            "give --port and --protocol, or --profile (find the port and protocol with "
            "'stackrig rail probe PORT')"
        )
    return _drive(args, settings)


def _rail_settings(args: argparse.Namespace) -> dict[str, object]:
    """The profile's [rail] values (if any), then every option given explicitly."""
    values: dict[str, object] = {"speed_mm_s": 5.0, "backlash_um": 0.0}
    if args.profile:
        from rig.profiles import find_profile, load_profile, profile_to_dict

        rail = profile_to_dict(load_profile(find_profile(args.profile))).get("rail", {})
        values.update(rail if isinstance(rail, dict) else {})
    given = {"port": args.port, "protocol": args.protocol, "steps_per_mm": args.steps_per_mm,
             "speed_mm_s": args.speed, "backlash_um": args.backlash}  # fmt: skip
    values.update({k: v for k, v in given.items() if v is not None})
    return values


def _drive(args: argparse.Namespace, values: dict[str, object]) -> int:
    from rig.devices.motion import MotionSettings, Rail
    from rig.devices.rails.registry import make_driver

    speed = float(values["speed_mm_s"])  # type: ignore[arg-type]
    steps = values.get("steps_per_mm")
    driver = make_driver(
        str(values["protocol"]),
        str(values["port"]),
        steps_per_mm=float(steps) if steps is not None else None,  # type: ignore[arg-type]
        speed_mm_s=speed,
    )
    motion = MotionSettings(
        backlash_um=float(values["backlash_um"]),  # type: ignore[arg-type]
        approach=str(values.get("approach", "positive")),
        soft_min_um=values.get("soft_min_um"),  # type: ignore[arg-type]
        soft_max_um=values.get("soft_max_um"),  # type: ignore[arg-type]
        speed_um_s=speed * 1000,
    )
    rail = Rail(driver, motion)
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
