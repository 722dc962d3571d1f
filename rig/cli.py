"""The ``stackrig`` command.

Exit codes: 0 success, 1 failure (the message says what happened and what to do), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rig import camera_cli, profile_cli, rail_cli
from rig.progress import Progress
from rig.tuning import tune_process

if TYPE_CHECKING:
    from stacking.engine import StackSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackrig",
        description="Capture-and-stack controller for macro and microscope focus stacking.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_stack(commands)
    rail_cli.add_commands(commands)
    camera_cli.add_commands(commands)
    profile_cli.add_commands(commands)
    return parser


def _add_stack(commands: argparse._SubParsersAction) -> None:
    from stacking.accumulate import METHODS
    from stacking.align import MODELS
    from stacking.focus import MEASURES

    p = commands.add_parser(
        "stack",
        help="stack captured frames (folders or files) into one all-in-focus image",
        description="Stack focus-bracketed frames into one all-in-focus image. Frames are taken "
        "in natural name order (frame_2 before frame_10); the first is the reference geometry.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="folders or image files")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="result image (.tif, .png or .jpg)"
    )
    p.add_argument(
        "--profile",
        help="take the stacking settings from this rig profile; options given here override it",
    )
    p.add_argument("--method", choices=METHODS, default=None, help="fusion (default pyramid)")
    p.add_argument(
        "--align",
        choices=MODELS,
        default=None,
        help="alignment model (default similarity: rails change magnification)",
    )
    p.add_argument(
        "--focus-measure",
        choices=MEASURES,
        default=None,
        help="focus measure (default laplacian)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="PX",
        help="focus window diameter in pixels (default: 1.6%% of the image diagonal)",
    )
    p.add_argument(
        "--depth-map",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the depth map (16-bit frame index) and PATH-colour.png",
    )
    p.add_argument("--crop", action="store_true", help="crop to the area every frame covers")
    p.add_argument(
        "--luminance-only",
        action="store_true",
        help="fuse luminance only, carry colour from the sharpest frame",
    )
    p.add_argument(
        "--sharpen",
        type=float,
        default=None,
        metavar="AMOUNT",
        help="unsharp-mask the result (e.g. 0.5; default off)",
    )
    p.add_argument(
        "--bit-depth",
        type=int,
        choices=(8, 16),
        default=None,
        help="output bits per channel (default 16 if any input is 16-bit or RAW)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="worker threads for image processing (default: all cores)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable frame instead of skipping it",
    )
    p.add_argument(
        "--reuse-alignment",
        nargs="?",
        const="auto",
        default=None,
        metavar="REPORT",
        help="reuse the alignment of an earlier run (its .stack.json; default: the "
        "report beside OUTPUT) to try other fusion settings quickly",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run_stack)


def _run_stack(args: argparse.Namespace) -> int:
    import cv2

    from rig import restack
    from stacking import io

    if args.threads is not None:
        if args.threads < 1:
            return _fail("--threads must be at least 1")
        cv2.setNumThreads(args.threads)
    try:
        settings = _stack_settings(args)
    except ValueError as exc:
        return _fail(str(exc))
    found = io.collect_inputs(args.inputs)
    for skipped in found.skipped:
        print(f"warning: skipped {skipped}: not an image stackrig reads", file=sys.stderr)
    if not found.images:
        return _fail(
            "no images found in the inputs: give folders or files with frames "
            "(JPEG, PNG, TIFF or camera RAW)"
        )
    reuse = None
    if args.reuse_alignment == "auto":
        reuse = restack.report_path(args.output)
    elif args.reuse_alignment:
        reuse = Path(args.reuse_alignment)
    if reuse is not None and not reuse.is_file():
        return _fail(f"{reuse}: no earlier report to reuse; stack once without --reuse-alignment")
    job = restack.RestackJob(
        inputs=found.images,
        output=args.output,
        settings=settings,
        depth_map=args.depth_map,
        bit_depth=args.bit_depth,
        strict=args.strict,
        reuse_report=reuse,
    )
    progress = None if args.quiet else Progress(len(found.images))

    def on_frame(report: restack.FrameReport) -> None:
        if not report.accepted:
            print(f"\nwarning: {report.name} not used: {report.reason}", file=sys.stderr)
        if progress is not None:
            progress.step(report.name)

    try:
        outcome = restack.run(job, on_frame)
    finally:
        if progress is not None:
            progress.close()
    _print_summary(outcome, len(found.images))
    return EXIT_OK


def _stack_settings(args: argparse.Namespace) -> StackSettings:
    """The profile's stacking settings (or the defaults), then every option given explicitly."""
    from dataclasses import replace

    from stacking.engine import StackSettings

    base = StackSettings()
    if args.profile:
        from rig.profiles import find_profile, load_profile

        base = load_profile(find_profile(args.profile)).stack_settings()
    given = {
        "method": args.method, "align": args.align, "focus_measure": args.focus_measure,
        "window": args.window, "sharpen": args.sharpen,
        "luminance_only": args.luminance_only or None, "crop": args.crop or None,
    }  # fmt: skip
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def _print_summary(outcome: object, given: int) -> None:
    from rig.restack import RestackOutcome

    assert isinstance(outcome, RestackOutcome)
    result = outcome.result
    used, rejected = result.accepted, result.rejected
    out = sys.stderr
    print(f"stacked {len(used)} of {given} frames -> {outcome.output}", file=out)
    for report in rejected:
        print(f"  rejected {report.name}: {report.reason}", file=out)
    for path, why in outcome.unreadable:
        print(f"  unreadable {path.name}: {why}", file=out)
    if result.crop is not None:
        x, y, w, h = result.crop
        print(f"  cropped to {w}x{h} at ({x}, {y}), the area every frame covers", file=out)
    ratio = result.sharpness / outcome.inputs_sharpness if outcome.inputs_sharpness else 0.0
    print(
        f"  sharpness {result.sharpness:.4f} vs inputs' mean {outcome.inputs_sharpness:.4f} "
        f"({ratio:.2f}x)",
        file=out,
    )
    per = outcome.seconds / max(1, given)
    print(
        f"  time {outcome.seconds:.1f} s ({per:.2f} s/frame), peak memory "
        f"{outcome.peak_rss_mib:.0f} MiB",
        file=out,
    )
    print(f"  report {outcome.report}", file=out)
    if outcome.depth_map is not None:
        print(f"  depth map {outcome.depth_map} (colour: {outcome.depth_colour})", file=out)


def _fail(message: str) -> int:
    print(f"stackrig: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    tune_process()  # before anything imports OpenCV or allocates frames
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(
            "stackrig: error: give a command, e.g. 'stackrig stack FRAMES/ -o result.tif'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from rig.errors import RigError
    from rig.logs import setup_logging
    from stacking.errors import StackingError

    log = setup_logging()
    log.info("stackrig %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args))
    except (StackingError, RigError) as exc:
        log.error("%s", exc)
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("\nstackrig: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
