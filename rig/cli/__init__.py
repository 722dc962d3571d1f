"""The ``stackrig`` command: one parser, one exit-code policy.

Exit codes: 0 done; 1 failed (the message says what happened and what to do); 2 usage (a
wrong option or value: nothing was done); 130 interrupted (the message says what was written).
Nothing here imports OpenCV: :func:`main` tunes the process before any command loads it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from rig.cli import batch, camera, capture, doctor, plan, profile, rail, stack, tui, udev
from rig.cli.common import UsageError, say
from rig.errors import Interrupted, RigError
from rig.tuning import tune_process
from stacking.errors import StackingError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def version() -> str:
    try:
        return metadata.version("stackrig")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackrig",
        description="Capture-and-stack controller for macro and microscope focus stacking.",
    )
    parser.add_argument("--version", action="version", version=f"stackrig {version()}")
    # 'stackrig' alone opens the terminal UI, with these; every command has its own as well
    parser.add_argument("--profile", metavar="NAME", help="rig profile for the terminal UI")
    tui.add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (stack, batch, rail, camera, profile, plan, capture, tui, doctor, udev):
        module.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tune_process()  # first: before any command imports OpenCV or allocates frames
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_usage(sys.stderr)
            say(
                "stackrig: error: give a command, e.g. 'stackrig stack FRAMES/ -o result.tif' "
                "(stackrig alone opens the terminal UI, in a terminal)",
                err=True,
            )
            return EXIT_USAGE
        args.handler = tui.run_tui
    from rig.logs import setup_logging

    log = setup_logging()
    log.info("stackrig %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args))
    except UsageError as exc:
        return _fail(log, exc, EXIT_USAGE)
    except (StackingError, RigError) as exc:
        return _fail(log, exc, EXIT_INTERRUPTED if isinstance(exc, Interrupted) else EXIT_FAILED)
    except KeyboardInterrupt:
        say("\nstackrig: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`stackrig profile list | head -1`): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:  # a bug: the user gets one line, the log file the traceback
        log.exception("internal error")
        from rig.paths import log_dir

        say(
            f"stackrig: internal error: {type(exc).__name__}: {exc}. This is a bug in stackrig: "
            f"the details are in {log_dir() / 'stackrig.log'}; please report it",
            err=True,
        )
        return EXIT_FAILED


def _fail(log: logging.Logger, exc: Exception, code: int) -> int:
    log.error("%s", exc)
    say(f"stackrig: error: {exc}", err=True)
    return code
