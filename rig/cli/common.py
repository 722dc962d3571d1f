"""What every command shares: option types, the shared options, profile + overrides, output.

Shared options are defined here once. Every setting a command line can change is a key of the
rig profile, so an option is applied as an override of the profile and validated by the same
code that validates profile files: ``--speed 0`` and ``speed_mm_s = 0`` get the same answer.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.errors import ProfileError, RigError

Handler = Callable[[argparse.Namespace], int]


class UsageError(RigError):
    """The command line is wrong (exit 2); the message says what to give instead."""


# -- option value types: every bad value becomes a usage error naming the option -------------


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
    return value


def distance_um(text: str) -> float:
    """A distance in micrometres; ``1e9`` and beyond are typos, not moves."""
    value = finite_float(text)
    if abs(value) > 1e7:
        raise argparse.ArgumentTypeError(f"{text!r}: more than 10 m; give micrometres")
    return value


def nonempty(text: str) -> str:
    """A name typed on the command line: an empty one (an unset shell variable) is refused."""
    if not text:
        raise argparse.ArgumentTypeError("'' is empty: give a name or path (a variable unset?)")
    return text


def path_arg(text: str) -> Path:
    """A path typed on the command line; an empty one would silently mean the current folder."""
    return Path(nonempty(text))


def count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value}: give {low} to {high}")
        return value

    return parse


# -- shared options ----------------------------------------------------------------------------


def add_command(
    commands: argparse._SubParsersAction, name: str, summary: str, details: str = ""
) -> argparse.ArgumentParser:
    """A command whose one-line summary is both its help entry and its description's start."""
    text = f"{summary[0].upper()}{summary[1:]}." + (f" {details}" if details else "")
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=text)
    return parser


def add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        type=nonempty,
        metavar="NAME",
        help="take settings from this rig profile (name or .toml file); options given here "
        "override it",
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display")


def add_simulate_choice(parser: argparse.ArgumentParser) -> None:
    """``--simulate [all|camera|rail]`` of the commands that drive the whole rig."""
    from rig.devices.factory import SIMULATE

    parser.add_argument(
        "--simulate",
        nargs="?",
        const="all",
        choices=SIMULATE,
        help="no hardware: 'all' (the default) the firmware emulator and the virtual camera; "
        "'camera' a real rail with the virtual camera; 'rail' the emulator with a real camera",
    )


def add_simulate(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--simulate", action="store_true", help=f"no hardware: {what}")


@dataclass(frozen=True)
class Override:
    """A command-line option that sets one profile key."""

    flag: str
    key: str  # section.key in the profile
    help: str
    kind: Callable[[str], Any] | None = finite_float  # None: a switch, --x / --no-x
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def add_overrides(parser: argparse.ArgumentParser, overrides: tuple[Override, ...]) -> None:
    for o in overrides:
        if o.kind is None:
            # --no-x too: a switch the profile turned on can be turned off for one run.
            parser.add_argument(o.flag, dest=o.dest, action=argparse.BooleanOptionalAction,
                                default=None, help=o.help)  # fmt: skip
        else:
            parser.add_argument(o.flag, dest=o.dest, type=o.kind, choices=o.choices,
                                metavar=o.metavar, default=None, help=o.help)  # fmt: skip


def load_profile_with(
    args: argparse.Namespace,
    overrides: tuple[Override, ...],
    defaults: Mapping[str, Any] | None = None,
) -> Any:
    """The ``--profile`` (or a bare one with ``defaults``), with every option given applied."""
    from rig.profiles import Profile, find_profile, load_profile, with_overrides

    name = getattr(args, "profile", None)
    profile = load_profile(find_profile(name)) if name else Profile(name="command line")
    given = dict(defaults or {}) if not name else {}
    flags = {}
    for o in overrides:
        value = getattr(args, o.dest, None)
        if value is not None:
            given[o.key] = value
            flags[o.key] = o.flag
    if not given:
        return profile
    try:
        return with_overrides(profile, given, source="options")
    except ProfileError as exc:
        text = str(exc)
        for key, flag in flags.items():  # name the option the user typed, not only the key
            text = text.replace(f"options: {key} =", f"options: {flag} ({key}) =")
        raise UsageError(text) from None


def say(message: str = "", *, err: bool = False, end: str = "\n") -> None:
    """One line for the user; names the OS gave us that are not UTF-8 print escaped."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(message, file=stream, end=end)
    except UnicodeEncodeError:
        print(message.encode("utf-8", "backslashreplace").decode("utf-8"), file=stream, end=end)


def output_folder(path: Path) -> Path:
    """A folder to write captures into: created when missing, checked writable."""
    from rig.outputs import check_folder_writable

    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {path} is a file; give a folder for the captured files")
    if not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise UsageError(f"-o {path}: cannot create it ({exc.strerror or exc})") from None
    check_folder_writable(path)
    return path


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM acts like Ctrl-C (the handler runs in the main thread), so a command that moves
    the rail stops it on either."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
