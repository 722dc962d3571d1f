"""``stackrig stack``: stack captured frames (folders or files) into one all-in-focus image."""

from __future__ import annotations

import argparse
from pathlib import Path

from rig.cli.common import (
    Override,
    UsageError,
    add_command,
    add_overrides,
    add_profile,
    add_quiet,
    count,
    load_profile_with,
    nonempty,
    path_arg,
    say,
)
from stacking.settings import MEASURES, METHODS, MODELS

OVERRIDES = (
    Override("--method", "stacking.method", "fusion (default pyramid)", str, choices=METHODS),
    Override(
        "--align",
        "stacking.align",
        "alignment model (default similarity: rails change magnification)",
        str,
        choices=MODELS,
    ),
    Override(
        "--focus-measure",
        "stacking.focus_measure",
        "focus measure (default laplacian)",
        str,
        choices=MEASURES,
    ),
    Override(
        "--window",
        "stacking.window_px",
        "focus window diameter in pixels (default: 1.6%% of the image diagonal)",
        metavar="PX",
    ),
    Override(
        "--sharpen",
        "stacking.sharpen",
        "unsharp-mask the result (e.g. 0.5; default off)",
        metavar="AMOUNT",
    ),
    Override(
        "--luminance-only",
        "stacking.luminance_only",
        "fuse luminance only, carry colour from the sharpest frame",
        None,
    ),
    Override(
        "--crop",
        "stacking.crop",
        "crop to the area every frame sees (the default); --no-crop keeps the border that "
        "magnification change leaves, only as sharp as the frames that see it",
        None,
    ),
    Override(
        "--compress",
        "stacking.compress_tiff",
        "zlib-compress the TIFF: about 60 %% smaller 8-bit files, slower to write",
        None,
    ),
)


SUMMARY = "stack captured frames (folders or files) into one all-in-focus image"
DETAILS = (
    "Frames are taken in the order given: a folder's files in natural name order (frame_2 "
    "before frame_10), files named one by one as named; the first is the reference geometry. "
    "A file given twice is stacked once. Earlier stackrig results in the input folders are "
    "recognised and left out."
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = add_command(commands, "stack", SUMMARY, DETAILS)
    p.add_argument(
        "inputs", nargs="+", type=path_arg, metavar="INPUT", help="folders or image files"
    )
    p.add_argument(
        "-o", "--output", type=path_arg, required=True, help="result image (.tif, .png or .jpg)"
    )
    add_profile(p)
    add_overrides(p, OVERRIDES)
    p.add_argument(
        "--depth-map",
        type=path_arg,
        default=None,
        metavar="PATH",
        help="also write the depth map (16-bit frame index) and PATH-colour.png",
    )
    add_output_options(p, threads="all cores")
    p.add_argument(
        "--reuse-alignment",
        type=nonempty,
        nargs="?",
        const="auto",
        default=None,
        metavar="REPORT",
        help="reuse the alignment of an earlier run (its .stack.json; default: the "
        "report beside OUTPUT) to try other fusion settings quickly",
    )
    add_quiet(p)
    p.set_defaults(handler=run_stack)


def add_output_options(p: argparse.ArgumentParser, threads: str) -> None:
    """--bit-depth, --threads and --strict: ``stackrig stack`` and ``stackrig batch`` share them."""
    p.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 16),
        default=None,
        help="output bits per channel (default 16 if any input is 16-bit or RAW)",
    )
    p.add_argument(
        "--threads",
        type=count(1, 256),
        default=None,
        metavar="N",
        help=f"worker threads for image processing (default: {threads})",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unusable frame instead of skipping it",
    )


def run_stack(args: argparse.Namespace) -> int:
    import cv2

    from rig.jobs import restack
    from rig.outputs import report_path
    from rig.progress import Progress

    profile = load_profile_with(args, OVERRIDES)
    settings = profile.stack_settings()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    reuse = None
    if args.reuse_alignment == "auto":
        reuse = report_path(args.output)
    elif args.reuse_alignment:
        reuse = Path(args.reuse_alignment)
    if reuse is not None and not reuse.is_file():
        raise UsageError(
            f"{reuse}: no earlier report to reuse; stack once without --reuse-alignment"
        )
    job = restack.prepare(
        args.inputs,
        args.output,
        settings=settings,
        depth_map=args.depth_map,
        bit_depth=args.bit_depth,
        compress=profile.stacking.compress_tiff,
        strict=args.strict,
        reuse=reuse,
    )
    for path, why in job.skipped:
        say(f"warning: skipped {path}: {why}", err=True)
    progress = None if args.quiet else Progress(len(job.frames))

    def on_frame(done: restack.FrameDone) -> None:
        why = done.problem or (done.report.reason if done.report else None)
        if why is not None:
            gap = "\n" if progress is not None and progress.tty else ""  # off the progress line
            say(f"{gap}warning: {done.path.name} not used: {why}", err=True)
        if progress is not None:
            progress.step(done.path.name)

    try:
        outcome = restack.run(job, on_frame)
    finally:
        if progress is not None:
            progress.close()
    _print_summary(outcome, len(job.frames))
    return 0


def _print_summary(outcome: object, given: int) -> None:
    from rig.session.stacker import StackOutcome

    assert isinstance(outcome, StackOutcome)
    result, out = outcome.result, outcome.outputs
    say(f"stacked {len(result.accepted)} of {given} frames -> {out.image}", err=True)
    for report in result.rejected:
        say(f"  rejected {report.name}: {report.reason}", err=True)
    for path, why in outcome.unusable:
        say(f"  unusable {path.name}: {why}", err=True)
    if result.crop is not None:
        x, y, w, h = result.crop
        say(f"  cropped to {w}x{h} at ({x}, {y}): the area every frame sees (--no-crop keeps "
            "the border, only as sharp as the frames that see it)", err=True)  # fmt: skip
    say(f"  coverage: {result.coverage.verdict}", err=True)
    mean = outcome.inputs_sharpness
    ratio = result.sharpness / mean if mean else 0.0
    say(f"  sharpness {result.sharpness:.4f} vs inputs' mean {mean:.4f} ({ratio:.2f}x)", err=True)
    if result.exposure_scale is not None:
        gains = ", ".join(f"{g:.3f}" for g in result.exposure_scale)
        say(f"  exposure: the stack's typical (its median frame's): x{gains} on the first's",
            err=True)  # fmt: skip
    if result.softness:
        say(f"warning: {result.softness}", err=True)
    per = outcome.seconds / max(1, given)
    say(
        f"  time {outcome.seconds:.1f} s ({per:.2f} s/frame), peak memory "
        f"{outcome.peak_rss_mib:.0f} MiB",
        err=True,
    )
    say(f"  report {out.report}", err=True)
    if out.depth_map is not None:
        say(f"  depth map {out.depth_map} (colour: {out.depth_colour})", err=True)
