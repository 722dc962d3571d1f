"""Batch speed-up: 8 stacks on 1 Dask worker vs 2 workers (one thread each, OpenCV capped to 1).

``python -m benchmarks.batch_speedup [--stacks 8] [--width 1200 --height 800 --frames 10]``

One synthetic stack (benchmarks/synth.py, cached under bench-out/) is linked into 8 stack folders;
each run stacks all 8 through ``rig.jobs.batch`` on a ``LocalCluster`` of processes reached by its
scheduler address (the cluster path), started before the clock. Printed: wall time for each,
the speed-up (target: at least 1.7x on the 2-core reference machine), and the scheduler overhead
per stack: the run's worker-time (wall x workers) minus the stacks' own stacking time, per stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import synth
from rig.jobs import batch
from rig.jobs.batch_find import find_stacks
from rig.jobs.batch_task import STACKED
from stacking.settings import StackSettings

BENCH_OUT = Path(__file__).resolve().parents[1] / "bench-out"


def frames(width: int, height: int, count: int) -> list[Path]:
    """The synthetic stack's frames, generated on first use."""
    out = BENCH_OUT / "synth" / f"{width}x{height}-n{count}-mix-s1"
    done = out / "meta.json"
    if not done.is_file() or f"v{synth.VERSION}" not in done.read_text():
        params = synth.SynthParams(width=width, height=height, frames=count)
        synth.generate(params, out)
    found = sorted(out.glob("frame_*.jpg"))
    if len(found) != count:
        raise SystemExit(f"{out}: expected {count} frames, found {len(found)}; delete it and rerun")
    return found


def one_run(root: Path, out: Path, workers: int) -> tuple[float, float]:
    """Wall time of the batch on ``workers`` workers, and the stacks' own stacking time."""
    from distributed import LocalCluster

    stacks = find_stacks([root]).stacks
    options = batch.Options(out, threads=1)
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        plan = batch.check(batch.plan(stacks, StackSettings(), options))
        started = time.perf_counter()
        ran = batch.run(plan, batch.Where(scheduler=cluster.scheduler_address))
        wall = time.perf_counter() - started
    bad = [d for d in ran.done if d.status != STACKED]
    if bad:
        raise SystemExit(f"benchmark stack failed: {bad[0].name}: {bad[0].reason}")
    return wall, sum(d.seconds for d in ran.done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=8)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args(argv)
    source = frames(args.width, args.height, args.frames)
    with tempfile.TemporaryDirectory(prefix="batch-speedup-") as tmp:
        root = Path(tmp) / "stacks"
        for n in range(args.stacks):
            folder = root / f"stack{n:02d}"
            folder.mkdir(parents=True)
            for frame in source:
                try:
                    os.link(frame, folder / frame.name)
                except OSError:  # another file system: copy
                    shutil.copy2(frame, folder / frame.name)
        results = {}
        for workers in (1, 2):
            results[workers] = one_run(root, Path(tmp) / f"out{workers}", workers)
    print(
        f"{args.stacks} stacks of {args.frames} frames at {args.width}x{args.height}, "
        "one thread per worker, OpenCV capped to 1"
    )
    for workers, (wall, busy) in results.items():
        overhead = (wall * workers - busy) / args.stacks
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '}: {wall:6.2f} s wall, "
            f"{busy:6.2f} s stacking, scheduler overhead {overhead * 1000:5.0f} ms/stack"
        )
    speedup = results[1][0] / results[2][0]
    verdict = "meets" if speedup >= 1.7 else "misses"
    print(f"  speed-up 2 vs 1 worker: {speedup:.2f}x ({verdict} the 1.7x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
