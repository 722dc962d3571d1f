"""Stacking captured files offline: find the frames, check every output, run the worker.

Everything that can be known before stacking is checked first (inputs exist, outputs can be
written and land on no input, the first frame is not too large, the window fits it, a reused
report matches), so a run either fails at once or does the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rig.errors import Interrupted
from rig.outputs import StackOutputs, check_stack_outputs, earlier_results, report_path
from rig.session.stacker import FrameDone, StackingWorker, StackJob, StackOutcome
from stacking import files, io
from stacking.errors import NothingToStackError, StackingError
from stacking.report import REPORT_SUFFIX, FrameReport, frame_reports
from stacking.settings import StackSettings

__all__ = ["Restack", "prepare", "report_path", "run"]


@dataclass
class Restack:
    frames: list[Path]
    skipped: list[tuple[Path, str]]  # left out before starting, and why
    job: StackJob


def prepare(
    inputs: Sequence[Path],
    output: Path,
    *,
    settings: StackSettings | None = None,
    depth_map: Path | None = None,
    bit_depth: int | None = None,
    compress: bool = False,
    strict: bool = False,
    reuse: Path | None = None,
) -> Restack:
    found = io.collect_inputs(inputs)
    reports = [p for p in found.skipped if p.name.endswith(REPORT_SUFFIX)]  # ours: no warning
    skipped = [(p, "not an image stackrig reads") for p in found.skipped if p not in reports]
    skipped += [
        (p, f"the same file as {kept}, given again: stacked once") for p, kept in found.duplicates
    ]
    earlier = earlier_results({p.parent for p in found.images} | {output.parent})
    frames = []
    for path in found.images:
        report = earlier.get(path.resolve())
        if report is not None:
            skipped.append((path, f"a stackrig result (see {report.name}), not a frame"))
        else:
            frames.append(path)
    if not frames:
        raise NothingToStackError(
            "no images found in the inputs: give folders or files with frames "
            "(JPEG, PNG, TIFF or camera RAW)"
        )
    outputs = StackOutputs.beside(output, depth_map)
    check_stack_outputs(outputs, frames, earlier)
    settings = settings or StackSettings()
    _check_first_frame(frames[0], settings)
    given = _given_alignments(reuse, frames) if reuse is not None else {}
    return Restack(frames, skipped, StackJob(settings, outputs, bit_depth, strict, compress, given))


def _check_first_frame(path: Path, settings: StackSettings) -> None:
    size = io.image_size(path)
    io.check_size(path, size)
    if size is not None and settings.window is not None:
        half = math.hypot(*size) / 2
        if settings.window > half:
            raise StackingError(
                f"focus window {settings.window:g} px is wider than half the frames' diagonal "
                f"({half:.0f} px for {size[0]}x{size[1]}): give a smaller --window, or none for "
                "the automatic one"
            )


def _given_alignments(report: Path, frames: list[Path]) -> dict[str, FrameReport]:
    given = {r.name: r for r in frame_reports(files.read_json(report), report.name)}
    missing = [p.name for p in frames if p.name not in given]
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise StackingError(
            f"{report}: has no alignment for {', '.join(missing[:5])}{more}; stack without "
            "reusing the alignment"
        )
    return given


def run(restack: Restack, on_frame: Callable[[FrameDone], None] | None = None) -> StackOutcome:
    """Stack every frame; Ctrl-C stops at the next frame and says what was written."""
    worker = StackingWorker(replace(restack.job, on_frame=on_frame)).start()
    try:
        for path in restack.frames:
            worker.submit(path)
        return worker.finish()
    except KeyboardInterrupt:
        written = worker.abort()
        outputs = ", ".join(str(p) for p in restack.job.outputs.paths())
        if written:
            raise Interrupted(f"interrupted after the outputs were written: {outputs}") from None
        raise Interrupted(
            "interrupted before the result was written; nothing was written"
        ) from None
