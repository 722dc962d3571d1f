"""One stack of a batch, as a worker process runs it (locally or on a Dask worker).

A :class:`Task` is plain data (paths as text, the settings dataclass), so it pickles to any
worker. :func:`run_task` never raises for a bad stack: it returns a :class:`StackDone` saying
what happened, so one corrupt stack cannot stop the batch. A stack whose outputs already hold
the result of the same frames (by content) and settings is skipped: that is how an interrupted
batch continues where it stopped. Outputs are one staged set (rig.session.stacker): a stack is
written whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from rig.errors import RigError
from rig.outputs import StackOutputs, check_folder_writable, results_listed_in
from rig.tuning import tune_process
from stacking import files
from stacking.errors import StackingError
from stacking.settings import StackSettings

log = logging.getLogger("stackrig.batch")

KEY_FORMAT = 1  # bumped when what goes into the content key changes
STACKED, UP_TO_DATE, FAILED, STOPPED = "stacked", "up to date", "failed", "stopped"

_tuned = False
_stopped: set[str] = set()  # batches told to stop (client.run reaches the worker's process)
_lock = threading.Lock()


@dataclass(frozen=True)
class Task:
    batch: str  # the batch's id, so a stop reaches only its own stacks
    name: str
    frames: tuple[str, ...]
    image: str
    depth_map: str | None
    settings: StackSettings
    bit_depth: int | None = None
    compress: bool = False
    strict: bool = False
    threads: int | None = None  # OpenCV threads; None: this worker's share of the cores
    reuse: str | None = None  # an earlier report whose alignments are reused
    shares: dict[str, int] = field(default_factory=dict)  # worker address -> its share


@dataclass(frozen=True)
class StackDone:
    name: str
    status: str  # stacked, up to date, failed, stopped
    frames: int  # frames given
    used: int = 0  # frames in the result
    seconds: float = 0.0
    result: str | None = None
    reason: str = ""  # why it failed, or what was left out


class BatchStopped(StackingError):
    """The batch was interrupted: this stack stopped before its outputs were written."""


def content_key(task: Task) -> str:
    """A digest of every frame's bytes (in order, with its name) and of every setting that
    changes the result: equal keys mean the same result."""
    digest = hashlib.blake2b(digest_size=20)
    recipe = {
        "format": KEY_FORMAT,
        "stackrig": _version(),
        "settings": asdict(task.settings),
        "bit_depth": task.bit_depth,
        "compress": task.compress,
        "strict": task.strict,
        "depth_map": task.depth_map is not None,
    }
    digest.update(json.dumps(recipe, sort_keys=True, default=str).encode())
    if task.reuse is not None:  # the alignments taken from it shape the result
        with open(task.reuse, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "blake2b").digest())
    for frame in task.frames:
        digest.update(Path(frame).name.encode("utf-8", "surrogateescape") + b"\0")
        with open(frame, "rb") as fh:
            digest.update(hashlib.file_digest(fh, "blake2b").digest())
    return digest.hexdigest()


def _version() -> str:
    try:
        return metadata.version("stackrig")
    except metadata.PackageNotFoundError:
        return "unknown"


def up_to_date(outputs: StackOutputs, key: str) -> bool:
    """The report beside the image records this key and every file it names is there."""
    try:
        report = files.read_json(outputs.report) if outputs.report.is_file() else None
    except StackingError:
        return False
    if not isinstance(report, dict) or report.get("batch_key") != key:
        return False
    if report.get("output") != outputs.image.name:
        return False
    wanted = outputs.depth_map.name if outputs.depth_map else None
    listed = results_listed_in(outputs.report)
    return report.get("depth_map") == wanted and all(p.is_file() for p in listed)


def prepare_process(threads: int) -> None:
    """Tune this worker process as the ``stackrig`` command does, and cap OpenCV's threads."""
    global _tuned
    with _lock:
        if not _tuned:
            from rig.logs import setup_logging

            tune_process()
            setup_logging()  # this machine's log file; warnings stay off the batch's terminal
            _tuned = True
    import cv2

    cv2.setNumThreads(max(1, threads))


def stop(batch: str) -> None:
    """Stacks of ``batch`` still running in this process stop at their next frame."""
    _stopped.add(batch)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker() -> tuple[str, int]:
    """This Dask worker's address and threads (a worker of the local pool is one too)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a Dask worker: run in this process
        return "", 1
    return worker.address, worker.state.nthreads


def run_task(task: Task) -> StackDone:
    """Stack one stack; every problem comes back as a failed :class:`StackDone`."""
    address, slots = _worker()
    prepare_process(task.threads or task.shares.get(address) or max(1, cores() // slots))
    started = time.perf_counter()
    if task.batch in _stopped:
        return StackDone(task.name, STOPPED, len(task.frames), reason="not started")
    try:
        return _stack(task, started)
    except (StackingError, RigError, OSError) as exc:
        status = STOPPED if isinstance(exc, BatchStopped) else FAILED
        return StackDone(task.name, status, len(task.frames), 0, _since(started), None, str(exc))
    except Exception as exc:  # a bug: the reason in the table, the traceback in the log
        log.exception("stack %s failed", task.name)
        reason = (
            f"internal error: {type(exc).__name__}: {exc} (a bug in stackrig: please report it)"
        )
        return StackDone(task.name, FAILED, len(task.frames), 0, _since(started), None, reason)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _stack(task: Task, started: float) -> StackDone:
    from rig.jobs import restack

    image = Path(task.image)
    depth = Path(task.depth_map) if task.depth_map else None
    outputs = StackOutputs.beside(image, depth)
    key = content_key(task)
    if up_to_date(outputs, key):
        return StackDone(task.name, UP_TO_DATE, len(task.frames), len(task.frames),
                         _since(started), str(image))  # fmt: skip
    job = restack.prepare(
        [Path(f) for f in task.frames], image, settings=task.settings, depth_map=depth,
        bit_depth=task.bit_depth, compress=task.compress, strict=task.strict,
        reuse=Path(task.reuse) if task.reuse else None,
    )  # fmt: skip
    job.job.report_extra["batch_key"] = key

    def on_frame(done: object) -> None:
        if task.batch in _stopped:
            raise BatchStopped("the batch was interrupted before this stack was written")

    outcome = restack.run(job, on_frame)
    left = [*job.skipped, *outcome.unusable]
    rejected = [(Path(r.name), r.reason or "rejected") for r in outcome.result.rejected]
    notes = "; ".join(f"{p.name}: {why}" for p, why in [*left, *rejected][:3])
    more = len(left) + len(rejected) - 3
    return StackDone(
        task.name, STACKED, len(task.frames), len(outcome.result.accepted), _since(started),
        str(outcome.outputs.image), notes + (f" (and {more} more)" if more > 0 else ""),
    )  # fmt: skip


def access_problems(inputs: list[str], outputs: list[str]) -> dict[str, object]:
    """Run on every worker before the batch: what this worker cannot read or write."""
    problems: list[str] = []
    for folder in inputs:
        path = Path(folder)
        if not path.is_dir():
            problems.append(f"cannot see input folder {folder}")
        elif not os.access(path, os.R_OK | os.X_OK):
            problems.append(f"cannot read input folder {folder}")
        if len(problems) >= 3:
            break
    for folder in outputs:
        try:
            check_folder_writable(Path(folder))
        except RigError as exc:
            problems.append(str(exc))
        if len(problems) >= 6:
            break
    import socket

    return {"host": socket.gethostname(), "cores": cores(), "problems": problems}
