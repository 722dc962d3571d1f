"""``stackrig batch``: re-stack every stack below some folders, here or on a Dask cluster."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rig.cli.common import (
    UsageError,
    add_command,
    add_overrides,
    add_profile,
    add_quiet,
    count,
    finite_float,
    load_profile_with,
    nonempty,
    path_arg,
    say,
)
from rig.cli.stack import OVERRIDES, add_output_options

SUMMARY = "re-stack every stack below some folders, on this machine or a Dask cluster"
DETAILS = (
    "A stack is a capture session folder or any folder of frames; a flat folder holding several "
    "stacks is split with --split-every, --split-pattern or --split-gap (see --dry-run). Results "
    "go to OUTROOT/ROOTNAME/<folder>/stack.tif (beside the frames without -o). Finished stacks "
    "are skipped (same frames and settings), so an interrupted batch continues where it stopped."
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "batch", SUMMARY, DETAILS)
    p.add_argument("roots", nargs="+", type=path_arg, metavar="ROOT", help="folders to search")
    p.add_argument(
        "-o",
        "--output",
        type=path_arg,
        default=None,
        metavar="OUTROOT",
        help="folder for the results (default: beside each stack's frames)",
    )
    add_profile(p)
    add_overrides(p, OVERRIDES)
    p.add_argument("--depth-maps", action="store_true", help="also write depth.png per stack")
    add_output_options(p, threads="each worker's share of its machine's cores")
    split = p.add_mutually_exclusive_group()
    _add_valued(split, (
        ("--split-every", count(1, 100_000), "N", "split flat folders into stacks of N frames"),
        ("--split-pattern", nonempty, "REGEX", "split flat folders by file name: frames whose "
         "REGEX match (its first group, if any) is equal form one stack, e.g. 'tile(\\d+)_'"),
        ("--split-gap", finite_float, "SECONDS",
         "split flat folders where the EXIF capture time pauses longer than SECONDS"),
    ))  # fmt: skip
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="list the stacks, any split, each result's path; stack none")  # fmt: skip
    where = p.add_mutually_exclusive_group()
    _add_valued(where, (
        ("--scheduler", nonempty, "ADDRESS", "run on this Dask scheduler (tcp://HOST:PORT or "
         "tls://HOST:PORT; TLS certificates from your dask config)"),
        ("--scheduler-file", path_arg, "FILE",
         "run on the Dask scheduler this file names (dask scheduler --scheduler-file)"),
    ))  # fmt: skip
    _add_valued(p, (
        ("--workers", count(1, 1024), "N",
         "local worker processes (default: sized to the cores and memory)"),
        ("--report", path_arg, "PATH",
         "the JSON report (default: OUTROOT/stackrig-batch.json, or in the first ROOT)"),
    ))  # fmt: skip
    add_quiet(p)
    p.set_defaults(handler=run_batch)


def _add_valued(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
    options: tuple[tuple[str, Callable[[str], Any], str, str], ...],
) -> None:
    """Options that take one value: (flag, type, metavar, help)."""
    for flag, kind, metavar, text in options:
        parser.add_argument(flag, type=kind, metavar=metavar, default=None, help=text)


def run_batch(args: argparse.Namespace) -> int:
    from rig.errors import BatchError, Interrupted
    from rig.jobs import batch
    from rig.jobs.batch_find import Split, find_stacks
    from rig.jobs.batch_task import FAILED, STACKED
    from rig.progress import Progress

    if args.split_gap is not None and args.split_gap <= 0:
        raise UsageError(f"--split-gap {args.split_gap:g}: give a pause longer than 0 seconds")
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise UsageError(f"-o {args.output} is a file; give a folder for the results")
    if args.workers is not None and not (args.scheduler is None and args.scheduler_file is None):
        raise UsageError("--workers sizes the local run; a cluster's workers are its own")
    # Workers elsewhere have other working folders: every path they get is absolute.
    args.roots = [r.absolute() for r in args.roots]
    args.output = args.output.absolute() if args.output is not None else None
    profile = load_profile_with(args, OVERRIDES)
    settings = profile.stack_settings()
    try:
        split = Split(args.split_every, args.split_pattern, args.split_gap)
    except BatchError as exc:
        raise UsageError(str(exc)) from None
    found = find_stacks(args.roots, split, exclude=args.output)
    for path, why in found.left_out:
        say(f"warning: left out {path}: {why}", err=True)
    for note in found.notes:
        say(f"note: {note}", err=True)
    options = batch.Options(
        args.output,
        depth_maps=args.depth_maps,
        bit_depth=args.bit_depth,
        compress=profile.stacking.compress_tiff,
        strict=args.strict,
        threads=args.threads,
    )
    planned = batch.plan(found.stacks, settings, options)
    if args.dry_run:
        _list(planned)
        return 0
    report = args.report or (args.output or args.roots[0]) / batch.REPORT_NAME
    batch.check_report_path(report)
    planned = batch.check(planned)  # every output checked (and its folder made) before work
    progress = None if args.quiet else Progress(len(found.stacks), label="stacks", unit="stack")

    def on_done(done: batch.StackDone) -> None:
        if progress is not None:
            progress.step(f"{done.name}: {done.status}")

    where = batch.Where(args.scheduler, args.scheduler_file, args.workers)
    try:
        ran = batch.run(planned, where, on_done)
    finally:
        if progress is not None:
            progress.close()
    for line in batch.table(ran.done):
        say(line)
    for d in ran.done:
        if d.status == STACKED and d.reason:
            say(f"warning: {d.name}: frames not used: {d.reason}", err=True)
    failed = [d for d in ran.done if d.status == FAILED]
    for d in failed:
        say(f"failed {d.name}: {d.reason}", err=True)
    written = batch.write_report(report, ran, settings)
    tally = ", ".join(f"{n} {status}" for status, n in batch.counts(ran.done).items())
    say(
        f"{len(ran.done)} stacks on {ran.where} in {ran.seconds:.1f} s: {tally}; report {written}",
        err=True,
    )
    if ran.interrupted:
        raise Interrupted(
            "interrupted: the stacks listed as stacked are written, no other output was; run "
            "the same command again to continue (finished stacks are skipped)"
        )
    if failed:
        say(
            f"stackrig: {len(failed)} of {len(ran.done)} stacks failed (reasons above); fix "
            "or remove them and run again: the finished ones are skipped",
            err=True,
        )
        return 1
    return 0


def _list(planned: object) -> None:
    from rig.jobs.batch import Plan

    assert isinstance(planned, Plan)
    for task in planned.tasks:
        first, last = Path(task.frames[0]).name, Path(task.frames[-1]).name
        say(f"{task.name}: {len(task.frames)} frames ({first} .. {last}) -> {task.image}")
    say(f"{len(planned.tasks)} stacks; dry run: nothing was stacked", err=True)
