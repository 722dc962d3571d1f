"""Offline stacking of captured files: read -> StackEngine -> result, depth map, report.

The next frame is read on a background thread while the engine works on the current one, so
decoding overlaps the maths; at most two frames are in memory at once.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stacking import io
from stacking.depthmap import render_depth
from stacking.engine import FrameReport, StackEngine, StackResult, StackSettings
from stacking.errors import ImageReadError, NothingToStackError, StackingError

log = logging.getLogger("stackrig.restack")

REPORT_SUFFIX = ".stack.json"


@dataclass
class RestackJob:
    inputs: list[Path]
    output: Path
    settings: StackSettings = field(default_factory=StackSettings)
    depth_map: Path | None = None
    bit_depth: int | None = None  # None: 16 when any input is 16-bit or RAW, else 8
    strict: bool = False  # stop at the first unreadable frame instead of skipping it
    reuse_report: Path | None = None  # earlier report whose alignments to reuse


@dataclass
class RestackOutcome:
    result: StackResult
    output: Path
    report: Path
    depth_map: Path | None
    depth_colour: Path | None
    unreadable: list[tuple[Path, str]]
    seconds: float
    peak_rss_mib: float
    inputs_sharpness: float


def report_path(output: Path) -> Path:
    """Where the per-frame report of ``output`` lives: ``result.tif`` -> ``result.stack.json``."""
    return output.with_name(output.stem + REPORT_SUFFIX)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_ahead(paths: list[Path]) -> Iterator[tuple[Path, io.ImageFile | ImageReadError]]:
    """Yield each image (or its read error) while the next one is read in the background."""

    def load(path: Path) -> io.ImageFile | ImageReadError:
        try:
            return io.read_image(path)
        except ImageReadError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader") as pool:
        pending: Future[io.ImageFile | ImageReadError] | None = None
        for i, path in enumerate(paths):
            current = pending.result() if pending is not None else load(path)
            pending = pool.submit(load, paths[i + 1]) if i + 1 < len(paths) else None
            yield path, current


def load_alignments(report: Path) -> dict[str, FrameReport]:
    """Frame reports of an earlier run, by file name."""
    data = io.read_json(report)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list):
        raise StackingError(f"{report.name}: not a stackrig report (no 'frames' list)")
    out = {}
    for entry in frames:
        try:
            out[entry["name"]] = FrameReport(**entry)
        except (TypeError, KeyError) as exc:
            raise StackingError(f"{report.name}: a frame entry is malformed ({exc})") from exc
    return out


def run(job: RestackJob, on_frame: Callable[[FrameReport], None] | None = None) -> RestackOutcome:
    """Stack ``job.inputs`` into ``job.output``; raises StackingError on failure."""
    started = time.perf_counter()
    engine = StackEngine(job.settings)
    given = load_alignments(job.reuse_report) if job.reuse_report else {}
    missing = [p.name for p in job.inputs if given and p.name not in given]
    if missing:
        raise StackingError(
            f"{job.reuse_report}: has no alignment for {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + "; stack without reusing the alignment"
        )
    unreadable: list[tuple[Path, str]] = []
    first: io.ImageFile | None = None
    deep = False
    for path, loaded in read_ahead(job.inputs):
        if isinstance(loaded, ImageReadError):
            if job.strict:
                raise loaded
            log.warning("skipped %s", loaded)
            unreadable.append((path, loaded.reason))
            continue
        if first is None:
            first = loaded
        deep = deep or loaded.bit_depth == 16 or loaded.is_raw
        known = given.get(path.name)
        report = engine.add(loaded.pixels, path.name, known.alignment() if known else None)
        del loaded
        if on_frame is not None:
            on_frame(report)
    if first is None:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in unreadable[:3])
        raise NothingToStackError(f"none of the {len(job.inputs)} frames could be read ({reasons})")
    result = engine.finalize()
    depth = job.bit_depth or (16 if deep else 8)
    output = io.write_image(
        job.output, result.image, bit_depth=depth, exif=first.exif, icc=first.icc
    )
    depth_path = colour_path = None
    if job.depth_map is not None:
        depth_path = io.write_image(job.depth_map, result.depth, bit_depth=16)
        colour_path = job.depth_map.with_name(job.depth_map.stem + "-colour.png")
        io.write_image(colour_path, render_depth(result.depth, len(result.reports)), bit_depth=8)
    accepted = result.accepted
    inputs_sharpness = sum(r.sharpness for r in accepted) / max(1, len(accepted))
    seconds = time.perf_counter() - started
    report_file = io.write_json(
        report_path(job.output),
        {
            "output": output.name,
            "settings": asdict(job.settings),
            "crop": result.crop,
            "result_sharpness": result.sharpness,
            "inputs_mean_sharpness": inputs_sharpness,
            "unreadable": [{"name": p.name, "reason": why} for p, why in unreadable],
            "seconds": round(seconds, 3),
            "frames": [r.to_dict() for r in result.reports],
        },
    )
    return RestackOutcome(
        result,
        output,
        report_file,
        depth_path,
        colour_path,
        unreadable,
        seconds,
        peak_rss_mib(),
        inputs_sharpness,
    )
