"""The stacking worker: frames on disk -> StackEngine on its own thread -> previews, outputs.

Whoever has frames (``stackrig stack`` with a folder, the capture session as shots land)
:meth:`~StackingWorker.submit` their paths; the worker reads each one (the next one is read on
a second thread while the engine works on the current one, so decoding overlaps the maths and
at most two frames are in memory), folds it into the engine and reports it. Submitting never
waits for stacking: if the engine falls behind, paths queue up and the frames wait on disk.

:meth:`~StackingWorker.finish` finalises and writes the result, depth map and report as one
staged set: an abort or a crash before the set is committed leaves no output at all.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rig.outputs import StackOutputs, results_listed_in
from stacking import files, io
from stacking.align import Alignment
from stacking.depthmap import PALETTE, depth_levels
from stacking.engine import StackEngine, StackResult
from stacking.errors import (
    FrameMismatchError,
    ImageReadError,
    NothingToStackError,
    StackingError,
)
from stacking.report import Coverage, FrameReport
from stacking.settings import StackSettings

log = logging.getLogger("stackrig.stacker")

_END = object()  # no more frames
_POLL_S = 0.2  # how often a waiting caller wakes to see Ctrl-C
_ABORTED = "stopped before the result was written; nothing was written"


class StackAborted(StackingError):
    """The stack was stopped before its outputs were written."""


@dataclass(frozen=True)
class FrameDone:
    """One frame handled: ``report`` when the engine took it, ``problem`` when it could not."""

    path: Path
    report: FrameReport | None
    problem: str | None
    handled: int  # frames handled so far, this one included


@dataclass
class StackOutcome:
    result: StackResult
    outputs: StackOutputs
    unusable: list[tuple[Path, str]]  # frames that could not be read or do not fit the stack
    seconds: float
    last_frame_to_result_s: float  # from the last frame handled to the outputs on disk
    finalize_s: float  # of that, the engine's finalize (the rest is writing the files)
    peak_rss_mib: float
    inputs_sharpness: float


@dataclass(frozen=True)
class _Metadata:
    exif: bytes | None
    icc: bytes | None


@dataclass
class StackJob:
    settings: StackSettings
    outputs: StackOutputs
    bit_depth: int | None = None  # None: 16 when any input is 16-bit or RAW, else 8
    strict: bool = False  # an unusable frame stops the stack instead of being skipped
    compress: bool = False  # zlib inside stack.tif: smaller, slower to write
    given: dict[str, FrameReport] = field(default_factory=dict)  # re-stack: alignments by name
    on_frame: Callable[[FrameDone], None] | None = None  # called on the worker thread
    on_preview: Callable[[np.ndarray, int], None] | None = None  # (snapshot, frames fused)
    preview_every: int = 0  # frames between previews; 0: none
    preview_side: int = 1024
    # the coverage verdict so far and its picture (StackEngine.coverage_map), with each preview
    # and once more after the last frame (the TUI shows both live)
    on_coverage: Callable[[Coverage, np.ndarray | None], object] | None = None
    # more top-level entries for the report (a batch's content key: rig.jobs.batch_task)
    report_extra: dict[str, object] = field(default_factory=dict)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(path: Path) -> io.ImageFile | ImageReadError:
    try:
        return io.read_image(path)
    except ImageReadError as exc:
        return exc


class StackingWorker:
    def __init__(self, job: StackJob) -> None:
        self.job = job
        self._paths: queue.Queue[object] = queue.Queue()
        self._abort = threading.Event()
        self._done = threading.Event()
        self._outcome: StackOutcome | None = None
        self._error: BaseException | None = None
        self._written = False
        self._thread = threading.Thread(target=self._run, name="stacker", daemon=True)
        self._unreadable = 0

    def start(self) -> StackingWorker:
        self._thread.start()
        return self

    def submit(self, path: Path) -> None:
        """Queue a frame that is on disk; returns at once."""
        self._paths.put(Path(path))

    @property
    def backlog(self) -> int:
        """Frames submitted but not yet handled."""
        return self._paths.qsize()

    def finish(self) -> StackOutcome:
        """No more frames: wait for the engine, write the outputs, return what happened."""
        self._paths.put(_END)
        self._wait()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome

    def abort(self) -> bool:
        """Stop at the next frame boundary and wait; True when the outputs were already written."""
        self._abort.set()
        self._paths.put(_END)
        self._wait()
        return self._written

    def _wait(self) -> None:
        # A bounded wait in a loop, so Ctrl-C reaches the main thread while the worker runs.
        while not self._done.wait(_POLL_S):
            pass

    # -- the worker thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._outcome = self._stack()
        except BaseException as exc:  # handed to the caller of finish()
            self._error = exc
        finally:
            self._done.set()

    def _stack(self) -> StackOutcome:
        job = self.job
        started = time.perf_counter()
        engine = StackEngine(job.settings)
        unusable: list[tuple[Path, str]] = []
        first: _Metadata | None = None  # the first frame's EXIF and ICC, for the result
        deep = False
        mono: bool | None = None  # every frame gray: the stack is written gray
        handled = 0
        last_handled = started
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader") as reader:
            upcoming = self._next(reader, block=True)
            while upcoming is not None and not self._abort.is_set():
                path, pending = upcoming
                loaded = pending.result()
                del pending, upcoming  # the future holds the frame too: one reference only
                upcoming = self._next(reader, block=False)  # read ahead while we work
                report, problem = self._add(engine, path, loaded)
                if report is not None:  # the engine took it, so it was read
                    assert isinstance(loaded, io.ImageFile)
                    first = first or _Metadata(loaded.exif, loaded.icc)  # not the pixels: 72+ MB
                    deep = deep or loaded.bit_depth == 16 or loaded.is_raw
                    mono = loaded.mono if mono is None else mono and loaded.mono
                del loaded
                if problem is not None:
                    unusable.append((path, problem))
                handled += 1
                last_handled = time.perf_counter()
                if job.on_frame is not None:
                    job.on_frame(FrameDone(path, report, problem, handled))
                self._maybe_preview(engine)
                if upcoming is None:
                    upcoming = self._next(reader, block=True)
        if self._abort.is_set():
            raise StackAborted(_ABORTED)
        if first is None:
            reasons = "; ".join(f"{p.name}: {why}" for p, why in unusable[:3]) or "no frames"
            verb = "read" if self._unreadable == len(unusable) else "used"
            raise NothingToStackError(f"none of the {handled} frames could be {verb} ({reasons})")
        finalize_start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="depth") as side:
            maps: list[Future[files.Staged]] = []
            staged: list[files.Staged] = []
            try:
                result = engine.finalize()
                finalize_s = time.perf_counter() - finalize_start
                if job.outputs.depth_map:
                    # Both depth maps encode (PNG frees the GIL, ~0.2 s each at 24 MP) while
                    # stack.tif is written and fsync'd, which leaves the cores idle.
                    maps = self._stage_depth(side, result.depth, len(result.reports))
                inputs_sharpness = float(np.mean([r.sharpness for r in result.accepted]))
                seconds = time.perf_counter() - started
                staged = self._stage(
                    result, first, 16 if deep else 8, bool(mono), unusable, seconds,
                    inputs_sharpness,
                )  # fmt: skip
                staged += [m.result() for m in maps]
            except BaseException:  # whatever failed, no temp file stays behind
                for item in staged:
                    item.discard()
                for future in maps:
                    with contextlib.suppress(BaseException):  # its own failure left none
                        future.result().discard()
                raise
        if self._abort.is_set():
            for item in staged:
                item.discard()
            raise StackAborted(_ABORTED)
        try:
            files.commit(staged)
        except BaseException:  # whatever stopped the renames, no temp file stays behind
            for item in staged:
                item.discard()
            raise
        self._written = True
        if job.on_coverage is not None:  # the final picture, with the outputs on disk
            try:
                job.on_coverage(result.coverage, engine.coverage_map())
            except Exception:  # a viewer's failure must not undo a stack that is written
                log.exception("showing the final coverage failed")
        return StackOutcome(
            result,
            job.outputs,
            unusable,
            seconds,
            time.perf_counter() - last_handled,
            finalize_s,
            peak_rss_mib(),
            inputs_sharpness,
        )

    def _next(
        self, reader: ThreadPoolExecutor, *, block: bool
    ) -> tuple[Path, Future[io.ImageFile | ImageReadError]] | None:
        """The next submitted path with its read under way, or None (end, or none yet)."""
        try:
            item = self._paths.get(block=block)
        except queue.Empty:
            return None
        if item is _END:
            self._paths.put(_END)  # seen again by the blocking call that ends the loop
            return None
        assert isinstance(item, Path)
        return item, reader.submit(_load, item)

    def _add(
        self, engine: StackEngine, path: Path, loaded: io.ImageFile | ImageReadError
    ) -> tuple[FrameReport | None, str | None]:
        if isinstance(loaded, ImageReadError):
            if self.job.strict:
                raise loaded
            log.warning("skipped %s", loaded)
            self._unreadable += 1
            return None, loaded.reason
        known = self.job.given.get(path.name)
        try:
            report = engine.add(
                loaded.pixels, path.name, Alignment.from_report(known) if known else None
            )
        except FrameMismatchError as exc:
            if self.job.strict:
                raise FrameMismatchError(f"{path.name}: {exc}") from exc
            log.warning("skipped %s: %s", path.name, exc)
            return None, str(exc)
        return report, None

    def _maybe_preview(self, engine: StackEngine) -> None:
        """Every ``preview_every`` frames fused: the snapshot and the coverage so far."""
        job = self.job
        fused, every = engine.frames_fused, job.preview_every
        if every <= 0 or not fused or fused % every:
            return
        if job.on_preview is not None:
            snapshot = engine.snapshot(job.preview_side)
            if snapshot is not None:
                job.on_preview(snapshot, fused)
        if job.on_coverage is not None:
            job.on_coverage(engine.coverage(), engine.coverage_map())

    def _stage_depth(
        self, pool: ThreadPoolExecutor, depth: np.ndarray, frames: int
    ) -> list[Future[files.Staged]]:
        """The depth map and its colour rendering, each encoding on its own thread."""
        out = self.job.outputs
        assert out.depth_map is not None and out.depth_colour is not None
        colour = out.depth_colour
        return [
            pool.submit(io.stage_image, out.depth_map, depth, bit_depth=16),
            pool.submit(lambda: io.stage_palette_png(colour, depth_levels(depth, frames), PALETTE)),
        ]

    def _earlier_outputs(self) -> list[str]:
        out = self.job.outputs
        now = {p.name for p in out.paths()}
        kept = [p for p in results_listed_in(out.report) if p.exists() and p.name not in now]
        return sorted(p.name for p in kept)

    def _stage(
        self,
        result: StackResult,
        first: _Metadata,
        default_depth: int,
        mono: bool,
        unusable: list[tuple[Path, str]],
        seconds: float,
        inputs_sharpness: float,
    ) -> list[files.Staged]:
        out = self.job.outputs
        depth = self.job.bit_depth or default_depth
        staged: list[files.Staged] = []
        try:
            # Gray in, gray out: the fused channels of gray frames are gray already.
            image = cv2.cvtColor(result.image, cv2.COLOR_RGB2GRAY) if mono else result.image
            staged.append(
                io.stage_image(
                    out.image,
                    image,
                    bit_depth=depth,
                    exif=first.exif,
                    icc=first.icc,
                    compress=self.job.compress,
                )
            )
            document = {
                "output": out.image.name,
                # What the run this report replaces wrote and this one did not: still ours.
                "earlier_outputs": self._earlier_outputs(),
                "depth_map": out.depth_map.name if out.depth_map else None,
                "depth_colour": out.depth_colour.name if out.depth_colour else None,
                "settings": asdict(self.job.settings),
                "crop": result.crop,
                "coverage": result.coverage.to_dict(),
                "result_sharpness": result.sharpness,
                "inputs_mean_sharpness": inputs_sharpness,
                "softer_than_sharpest_frame": result.softness,
                "exposure_scale": result.exposure_scale,
                "unreadable": [{"name": p.name, "reason": why} for p, why in unusable],
                "seconds": round(seconds, 3),
                "frames": [r.to_dict() for r in result.reports],
                **self.job.report_extra,
            }
            encoded = files.json_bytes(out.report, document)
            staged.append(files.stage(out.report, lambda fh: fh.write(encoded)))
        except BaseException:
            for item in staged:
                item.discard()
            raise
        return staged
