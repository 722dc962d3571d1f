"""Re-stacking many stacks: plan the outputs, check them all, run one stack per worker process.

Locally the workers are a Dask ``LocalCluster`` of processes on loopback (no listener beyond
127.0.0.1, no dashboard), sized to the cores and the memory a stack of these frames needs; with
a scheduler address or file the same tasks run on an existing Dask cluster, with Dask's own
security configuration (TLS through dask config or the scheduler file). Before any stack starts,
every worker checks it sees the inputs and can write the outputs. Each stack is one
:func:`rig.jobs.batch_task.run_task`: a bad stack comes back failed, the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from rig.errors import BatchError, OutputError, RigError
from rig.jobs.batch_find import Stack
from rig.jobs.batch_task import (
    FAILED,
    STOPPED,
    StackDone,
    Task,
    access_problems,
    cores,
    run_task,
    stop,
)
from rig.outputs import report_path
from stacking import files
from stacking.errors import StackingError
from stacking.settings import StackSettings

log = logging.getLogger("stackrig.batch")

REPORT_NAME = "stackrig-batch.json"
BYTES_PER_PIXEL = 80  # peak stacking memory per frame pixel (1786 MiB at 24 MP, README)
BASE_MIB = 300  # a worker process with OpenCV and numpy loaded
_STOP_WAIT_S = 20.0  # after Ctrl-C: how long running stacks get to stop at a frame boundary


@dataclass(frozen=True)
class Options:
    """Where results go and how they are written (the settings come per stack)."""

    out_root: Path | None = None  # None: beside each stack's frames (a session: its folder)
    image_name: str = "stack.tif"  # a split part's is stack-<label>.tif
    depth_maps: bool = False  # also depth.png (+ depth-colour.png)
    bit_depth: int | None = None
    compress: bool = False
    strict: bool = False
    threads: int | None = None  # OpenCV threads per stack; None: each worker's share of cores
    reuse_alignment: bool = False  # a session with a stack report: reuse its alignments


@dataclass
class Plan:
    batch: str
    tasks: list[Task]
    refused: list[StackDone] = field(default_factory=list)  # failed their checks: not run
    order: list[str] = field(default_factory=list)  # every stack's name, as found

    def in_order(self, done: list[StackDone]) -> list[StackDone]:
        place = {name: n for n, name in enumerate(self.order)}
        return sorted(done, key=lambda d: place.get(d.name, len(place)))


def outputs_of(stack: Stack, options: Options) -> tuple[Path, Path | None]:
    """A stack's result image and depth map (when asked for)."""
    if options.out_root is None:
        folder = stack.folder
    else:
        rel = stack.folder.relative_to(stack.root)
        folder = options.out_root / (stack.root.resolve().name or "root") / rel
    name = Path(options.image_name)
    tag = f"-{stack.label}" if stack.label else ""
    image = folder / f"{name.stem}{tag}{name.suffix}"
    depth = folder / f"depth{tag}.png" if options.depth_maps else None
    return image, depth


def plan(
    stacks: Sequence[Stack],
    settings: StackSettings | Callable[[Stack], StackSettings],
    options: Options,
) -> Plan:
    """One task per stack; two stacks writing the same file are refused before anything."""
    if not stacks:
        raise BatchError("no stacks found: give folders holding frames or capture sessions")
    batch = uuid.uuid4().hex[:12]
    tasks: list[Task] = []
    taken: dict[Path, Stack] = {}
    for stack in stacks:
        image, depth = outputs_of(stack, options)
        for path in (image, depth):
            if path is None:
                continue
            other = taken.setdefault(path.absolute(), stack)
            if other is not stack:
                raise BatchError(
                    f"the stacks in {other.folder} and {stack.folder} would both write {path}: "
                    "give roots with different names, or run them one at a time"
                )
        chosen = settings(stack) if callable(settings) else settings
        earlier = report_path(stack.folder / "stack.tif")
        reuse = str(earlier) if options.reuse_alignment and earlier.is_file() else None
        tasks.append(
            Task(batch, stack.name, tuple(str(p) for p in stack.frames), str(image),
                 str(depth) if depth else None, chosen, options.bit_depth, options.compress,
                 options.strict, options.threads, reuse=reuse)
        )  # fmt: skip
    return Plan(batch, tasks, order=[t.name for t in tasks])


def check(plan: Plan) -> Plan:
    """Create the output folders and check every stack's inputs and outputs here, before any
    work; a stack that fails its checks is reported, not run."""
    from rig.jobs import restack

    ready, refused = [], list(plan.refused)
    for task in plan.tasks:
        try:
            for path in filter(None, (task.image, task.depth_map)):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            restack.prepare(
                [Path(f) for f in task.frames], Path(task.image), settings=task.settings,
                depth_map=Path(task.depth_map) if task.depth_map else None,
                reuse=Path(task.reuse) if task.reuse else None,
            )  # fmt: skip
        except (RigError, StackingError, OSError) as exc:
            refused.append(StackDone(task.name, FAILED, len(task.frames), reason=_reason(exc)))
            continue
        ready.append(task)
    return replace(plan, tasks=ready, refused=refused)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, RigError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return str(exc)


def check_report_path(path: Path) -> None:
    """The batch report may replace only an earlier batch report."""
    if path.is_dir():
        raise OutputError(f"report {path} is a folder; give a file name, e.g. {path / REPORT_NAME}")
    if path.exists() or path.is_symlink():
        try:
            earlier = files.read_json(path)
        except StackingError:
            earlier = None
        if not isinstance(earlier, dict) or "stackrig_batch" not in earlier:
            raise OutputError(
                f"report {path} exists and is not a stackrig batch report; choose another "
                "--report, or move that file away first"
            )


# -- where the work runs -----------------------------------------------------------------------


def local_workers(tasks: Sequence[Task], wanted: int | None = None) -> int:
    """Worker processes for this machine: one per core, fewer when memory is short."""
    import psutil

    from stacking import io

    if wanted is not None:
        return wanted
    pixels = 0
    for task in tasks:
        with contextlib.suppress(Exception):  # the stack's own run reports a bad frame
            size = io.image_size(task.frames[0])
            pixels = max(pixels, size[0] * size[1] if size else 0)
    need = BASE_MIB * 2**20 + BYTES_PER_PIXEL * pixels
    fit = int(psutil.virtual_memory().available * 0.8 // need)
    return max(1, min(cores(), len(tasks), fit))


@dataclass(frozen=True)
class Where:
    """How to reach the workers: a scheduler address or file; neither: a local cluster."""

    scheduler: str | None = None
    scheduler_file: Path | None = None
    workers: int | None = None  # local: worker processes (None: sized to the machine)
    threads_per_worker: int = 1  # local: stacks at once per worker process
    timeout_s: float = 30.0  # to reach the scheduler and see a first worker

    @property
    def local(self) -> bool:
        return self.scheduler is None and self.scheduler_file is None


@contextlib.contextmanager
def connect(where: Where, tasks: Sequence[Task]) -> Iterator[tuple[Any, str]]:
    """A Dask client and a description of where it runs (no addresses: reports keep paths and
    figures only)."""
    from distributed import Client, LocalCluster

    if where.local:
        n = local_workers(tasks, where.workers)
        _resource_tracker_started()
        with _no_interrupt():  # the worker processes start with Ctrl-C ignored: we stop them
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=where.threads_per_worker, processes=True,
                host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
            )  # fmt: skip
        try:
            with Client(cluster) as client:
                client.register_plugin(IgnoreInterrupt(), name="stackrig-ignore-interrupt")
                yield client, f"this machine: {n} worker process{'es' if n > 1 else ''}"
        finally:
            cluster.close()
        return
    target = where.scheduler or f"scheduler file {where.scheduler_file}"
    try:
        if where.scheduler is not None:
            client = Client(where.scheduler, timeout=f"{where.timeout_s}s")
        else:
            client = Client(scheduler_file=str(where.scheduler_file), timeout=f"{where.timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise BatchError(
            f"cannot reach the Dask scheduler ({target}): {exc}. Start it ('dask scheduler'), "
            "check the address or file, and for TLS the certificates in your dask config"
        ) from None
    try:
        yield client, "a Dask cluster"
    finally:
        client.close()


def _resource_tracker_started() -> None:
    """multiprocessing's resource tracker is handed ``sys.stderr``'s descriptor when it starts;
    under the TUI that is a capture object with none (-1), and every worker start would fail
    ("bad value(s) in fds_to_keep"): start the tracker on /dev/null instead."""
    from multiprocessing import resource_tracker

    try:
        if sys.stderr.fileno() >= 0:
            return
    except (AttributeError, OSError, ValueError):  # no descriptor at all: the tracker copes
        return
    saved = sys.stderr
    with open(os.devnull, "w") as sink:
        sys.stderr = sink
        try:
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Ctrl-C ignored meanwhile (in the main thread), so processes started now inherit that:
    Ctrl-C reaches the whole process group, and the batch, not the terminal, stops its workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class IgnoreInterrupt(WorkerPlugin):
    """A local worker process (a restarted one too) ignores Ctrl-C: the batch tells its stacks
    to stop at a frame boundary instead, so nothing is left half-written."""

    def setup(self, worker: Any) -> None:
        with contextlib.suppress(ValueError):  # not the process's main thread: nothing to do
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def preflight(client: Any, tasks: Sequence[Task], timeout_s: float = 30.0) -> dict[str, int]:
    """Every worker sees every input folder and can write every output folder; returns each
    worker's share of its machine's cores (its OpenCV threads per stack)."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        raise BatchError(
            f"the Dask scheduler has no workers after {timeout_s:g} s: start some "
            "('dask worker SCHEDULER_ADDRESS') and run the batch again"
        ) from None
    inputs = sorted({str(Path(f).parent) for t in tasks for f in t.frames})
    outputs = sorted({str(Path(p).parent) for t in tasks for p in (t.image, t.depth_map) if p})
    try:
        answers = client.run(access_problems, inputs, outputs)
    except Exception as exc:  # whatever the worker could not import or run
        raise BatchError(
            f"the workers cannot run stackrig's checks ({type(exc).__name__}: {exc}); install "
            "the same stackrig on every worker's Python"
        ) from None
    info = client.scheduler_info(n_workers=-1)["workers"]
    bad = [
        f"worker {_named(address, info)}(host {answer['host']}): " + "; ".join(answer["problems"])
        for address, answer in sorted(answers.items())
        if answer["problems"]
    ]
    if bad:
        raise BatchError(
            "; ".join(bad) + ". Every worker must see the frames and the outputs at the same "
            "paths (one shared file system, mounted at the same place) and be able to write them"
        )
    slots: dict[str, int] = {}
    for address in answers:
        host = answers[address]["host"]
        slots[host] = slots.get(host, 0) + int(info.get(address, {}).get("nthreads", 1))
    return {a: max(1, answers[a]["cores"] // slots[answers[a]["host"]]) for a in answers}


def _named(address: str, info: dict[str, Any]) -> str:
    name = str(info.get(address, {}).get("name", address))
    return f"{address} " if name in (address, "") or name.isdigit() else f"{name!r} at {address} "


@dataclass
class Ran:
    done: list[StackDone]
    interrupted: bool
    seconds: float
    where: str


def run(
    plan: Plan,
    where: Where = Where(),
    on_done: Callable[[StackDone], None] | None = None,
) -> Ran:
    """Run every checked task; Ctrl-C stops the running stacks at a frame boundary (nothing
    half-written) and returns what finished, with ``interrupted`` set."""
    from distributed import as_completed

    started = time.perf_counter()
    done = list(plan.refused)
    for item in plan.refused:
        if on_done is not None:
            on_done(item)
    if not plan.tasks:
        return Ran(done, False, time.perf_counter() - started, "nowhere: no stack to run")
    with connect(where, plan.tasks) as (client, description):
        shares = preflight(client, plan.tasks, where.timeout_s)
        tasks = [replace(t, shares=shares) for t in plan.tasks]
        keys = [f"stackrig-{plan.batch}-{n}" for n in range(len(tasks))]
        futures = client.map(run_task, tasks, key=keys, pure=False)
        names = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        finished: set[str] = set()
        try:
            for future in as_completed(futures):
                item = _collect(future, names[future.key])
                finished.add(future.key)
                done.append(item)
                if on_done is not None:
                    on_done(item)
        except KeyboardInterrupt:
            done += _stop(client, plan.batch, [f for f in futures if f.key not in finished], names)
            return Ran(plan.in_order(done), True, time.perf_counter() - started, description)
    return Ran(plan.in_order(done), False, time.perf_counter() - started, description)


def _collect(future: Any, task: Task) -> StackDone:
    try:
        result = future.result()
    except Exception as exc:  # the worker process died under it (memory, a crash) or vanished
        log.error("stack %s: %s: %s", task.name, type(exc).__name__, exc)
        return StackDone(
            task.name, FAILED, len(task.frames),
            reason=f"its worker process died while stacking it ({type(exc).__name__}): out of "
            "memory or a crash; stack it alone with 'stackrig stack' to see why",
        )  # fmt: skip
    assert isinstance(result, StackDone)
    return result


def _stop(client: Any, batch: str, pending: list[Any], tasks: dict[str, Task]) -> list[StackDone]:
    """Tell the batch's stacks to stop (running ones at their next frame, queued ones before
    they start) and collect what they answer; nothing is left half-written."""
    from distributed import wait

    with contextlib.suppress(Exception):
        client.run(stop, batch)
        wait(pending, timeout=_STOP_WAIT_S)
    out = []
    for future in pending:
        task = tasks[future.key]
        if future.status in ("finished", "error"):
            out.append(_collect(future, task))
        else:
            out.append(StackDone(task.name, STOPPED, len(task.frames), reason="not started"))
    with contextlib.suppress(Exception):
        client.cancel(pending)
    return out


# -- the report --------------------------------------------------------------------------------


def counts(done: Sequence[StackDone]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in done:
        out[item.status] = out.get(item.status, 0) + 1
    return out


def write_report(path: Path, ran: Ran, settings: StackSettings | None) -> Path:
    """The batch as JSON (paths and figures only), written atomically."""
    from dataclasses import asdict

    document = {
        "stackrig_batch": 1,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "where": ran.where,
        "interrupted": ran.interrupted,
        "seconds": round(ran.seconds, 3),
        "counts": counts(ran.done),
        "settings": asdict(settings) if settings is not None else "each session's own",
        "stacks": [asdict(d) for d in ran.done],
    }
    return files.write_json(path, document)


def table(done: Sequence[StackDone]) -> list[str]:
    """The summary: stack, frames (used/given), time, result path, status."""
    rows = [("stack", "frames", "time", "result", "status")]
    for d in done:
        frames = f"{d.used}/{d.frames}" if d.status != FAILED else f"-/{d.frames}"
        rows.append((d.name, frames, f"{d.seconds:.1f} s", d.result or "-", d.status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)), r[4]])
            for r in rows]  # fmt: skip
