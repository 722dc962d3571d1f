"""Last frame on disk -> final stack on disk, in a capture session fed at a real rig's pace.

``python -m benchmarks.session_latency [--shots 30] [--size 6000x4000] [--interval 1.5]``

A session run by :func:`rig.session.run.shoot`, the function ``stackrig capture`` runs, on the
simulated rig (``benchmarks/simsession.py``: the GRBL emulator on a pty through the real driver
and ``Rail``, zero settle). The process is tuned first, as ``stackrig`` tunes itself. One shot
lands every ``--interval`` seconds: the camera waits for its slot (standing in for the rail's
move, the exposure and the download of a real rig; whatever the session itself spent is taken
out of the wait), then writes the frame into the download folder, fsync'd; the session saves it
(rename, fsync, sha256), journals it and hands it to the stacking worker, which reads it from
disk and stacks it on its own thread while the capture goes on, writing ``frame_stacked`` lines
and a preview every ``output.preview_every`` (5) frames, as in a real session.

**Measured**: from the last frame saved and journaled (the moment the session hands it to the
stacker) to the outputs committed (``stack.tif``, the depth map, its colour rendering and the
report, staged, fsync'd and renamed as one set; ``stack.tif`` is not on disk before that).
Target: under 1.5 s at 24 MP. Also per shot: when it was saved and when the worker had stacked
it (the backlog: frames on disk not yet stacked), the engine's time per frame, the worker's
(reading, engine, preview, journal), the process's peak RSS (``ru_maxrss``: everything in it)
and its CPU time.

**Not measured**: the rendering of the scene. The frames are real rendered JPEGs (the subject
of the simulated rig at the plan's positions, encoded as the simulated camera encodes them) but
rendered beforehand, in a child process, and cached under ``bench-out/session-frames/``: at
24 MP the renderer takes about 6 s and 1.3 GB a frame, and stands in for the scene in front
of the lens, not for anything stackrig does. Nor are the rail's, camera's and the session's
own time per shot, which sit inside the interval (``benchmarks.session_overhead`` measures the
session's own).

``--json`` prints the figures as one JSON line instead (``benchmarks.session_memory`` runs this
in a child per session).
"""

from rig.tuning import tune_process

tune_process()

import argparse  # noqa: E402  (after tune_process on purpose)
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.run import parse_size  # noqa: E402
from benchmarks.simsession import PacedCamera, prerendered, simulated_session  # noqa: E402
from rig.session.capture import CaptureSession, Stacker  # noqa: E402
from rig.session.run import InFocusOrder, shoot  # noqa: E402
from rig.session.stacker import FrameDone, StackingWorker  # noqa: E402

TARGET_S = 1.5


class Handover:
    """The session's stacker, noting when each frame is handed to it: saved and journaled."""

    def __init__(self, stacker: Stacker, saved: list[float]) -> None:
        self.stacker, self.saved = stacker, saved

    def submit(self, path: Path) -> None:
        self.saved.append(time.perf_counter())
        self.stacker.submit(path)


def run(frames: list[Path], interval_s: float) -> dict[str, Any]:
    """One paced session over ``frames``; the figures (times in s from the first frame saved)."""
    saved: list[float] = []  # per shot: saved and journaled
    handled: list[float] = []  # per frame: the worker has stacked it
    add_s: list[float] = []  # per frame: engine.add
    previews: list[tuple[int, float]] = []  # (frames fused, preview written)
    problems: list[str] = []

    def watch(session: CaptureSession) -> None:
        stacker = session.stacker
        assert stacker is not None
        worker = stacker.worker if isinstance(stacker, InFocusOrder) else stacker
        assert isinstance(worker, StackingWorker)
        session.stacker = Handover(stacker, saved)
        job = worker.job
        frame_hook, preview_hook = job.on_frame, job.on_preview

        def on_frame(done: FrameDone) -> None:
            handled.append(time.perf_counter())
            add_s.append(done.report.seconds if done.report else float("nan"))
            if done.problem:
                problems.append(f"{done.path.name}: {done.problem}")
            if frame_hook is not None:
                frame_hook(done)

        def on_preview(snapshot: np.ndarray, fused: int) -> None:
            if preview_hook is not None:
                preview_hook(snapshot, fused)
            previews.append((fused, time.perf_counter()))

        job.on_frame, job.on_preview = on_frame, on_preview

    camera = PacedCamera(frames, interval_s)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    with simulated_session(len(frames)) as sim:
        result = shoot(sim.folder, sim.journal, sim.rail, camera, on_session=watch)
        outcome = result.outcome
    cpu_s, wall_s = time.process_time() - cpu_start, time.perf_counter() - wall_start
    t0 = saved[0]
    written = handled[-1] + outcome.last_frame_to_result_s  # the worker's own clock
    preview_after_last = max(0.0, previews[-1][1] - handled[-1]) if previews else 0.0
    return {
        "shots": len(frames),
        "interval_s": interval_s,
        "accepted": len(outcome.result.accepted),
        "problems": problems,
        "saved_s": [t - t0 for t in saved],
        "stacked_s": [t - t0 for t in handled],
        "written_s": written - t0,
        "camera_wait_s": camera.waits,
        "add_s": add_s,
        "previews": [(n, t - t0) for n, t in previews],
        "latency_s": written - saved[-1],
        "session_latency_s": result.last_frame_to_stack_s,  # the session's own, journaled
        "last_to_stacked_s": handled[-1] - saved[-1],
        "preview_after_last_s": preview_after_last,
        "finalize_s": outcome.finalize_s,
        "writing_s": outcome.last_frame_to_result_s - preview_after_last - outcome.finalize_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "load_average": os.getloadavg()[0],  # the machine's, over the last minute: ours included
    }


def report(f: dict[str, Any], size: tuple[int, int]) -> None:
    saved, stacked, adds = f["saved_s"], f["stacked_s"], f["add_s"]
    n = len(saved)
    print(
        f"capture session (rig.session.run.shoot) on the simulated rig: {n} shots of "
        f"{size[0]}x{size[1]} JPEG, one every {f['interval_s']:.2f} s; {f['accepted']} stacked"
    )
    for problem in f["problems"]:
        print(f"  unusable: {problem}")
    print(
        "  shot  saved at  stacked at    lag  backlog: frames on disk not yet stacked, it included"
    )
    busy = []  # the worker's time per frame, from when it could start on it
    for k in range(n):
        backlog = k + 1 - sum(t <= saved[k] for t in stacked)
        start = max(saved[k], stacked[k - 1] if k else saved[k])
        busy.append(stacked[k] - start)
        print(
            f"  {k + 1:4d}  {saved[k]:7.2f} s  {stacked[k]:8.2f} s  {stacked[k] - saved[k]:5.2f} s"
            f"  {backlog:3d} {'#' * backlog}"
        )
    gaps = np.diff(saved) if n > 1 else np.zeros(1)
    waits = f["camera_wait_s"][1:] or [0.0]
    print(
        f"  shots saved every {np.median(gaps):.2f} s median ({gaps.min():.2f}..{gaps.max():.2f});"
        f" the camera waited {statistics.median(waits):.2f} s median for its slot"
        f" (least {min(waits):.2f} s{': the cadence slipped' if min(waits) == 0 else ''})"
    )
    print(
        f"  per frame: engine add median {statistics.median(adds):.2f} s, max {max(adds):.2f} s; "
        f"worker (read + add + journal + preview) median {statistics.median(busy):.2f} s, "
        f"max {max(busy):.2f} s"
    )
    late = [b for b in busy if b > f["interval_s"]]
    print(
        f"  backlog: {n - sum(t <= saved[-1] for t in stacked)} frame(s) not yet stacked when the "
        f"last was saved; {len(late)} of {n} frames took the worker longer than the interval"
    )
    target = "met" if f["latency_s"] < TARGET_S else "MISSED"
    print(
        f"  last frame saved -> stack.tif written: {f['latency_s']:.2f} s   "
        f"(target < {TARGET_S} s: {target})"
    )
    if f["session_latency_s"] is not None:
        print(
            f"    (the session's own figure, journaled with session_finished: "
            f"{f['session_latency_s']:.2f} s)"
        )
    print(
        f"    the last frame read and stacked (waiting for the worker included): "
        f"{f['last_to_stacked_s']:.2f} s, of which engine add {adds[-1]:.2f} s"
    )
    if f["preview_after_last_s"]:
        print(f"    preview of the stack so far after it:   {f['preview_after_last_s']:.2f} s")
    print(f"    engine finalize:                        {f['finalize_s']:.2f} s")
    print(f"    outputs staged, fsync'd and committed:  {f['writing_s']:.2f} s")
    print(
        f"  peak RSS {f['peak_rss_mib']:.0f} MiB (the whole process); CPU "
        f"{f['cpu_s'] / f['wall_s']:.2f} of {os.cpu_count()} cores busy on average over "
        f"{f['wall_s']:.0f} s (the machine's load average at the end: {f['load_average']:.1f})"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.session_latency")
    p.add_argument("--shots", type=int, default=30)
    p.add_argument("--size", type=parse_size, default=(6000, 4000))
    p.add_argument("--interval", type=float, default=1.5, help="seconds between shots")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = p.parse_args(argv)
    if args.shots < 2 or args.interval < 0:
        p.error("--shots must be 2 or more and --interval >= 0")
    width, height = args.size
    frames = prerendered(width, height, args.shots)
    figures = run(frames, args.interval)
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures, args.size)


if __name__ == "__main__":
    main()
