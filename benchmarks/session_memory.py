"""Peak memory of capture sessions of different lengths: does a session grow with its shots?

``python -m benchmarks.session_memory [--size 6000x4000] [--shots 30,60] [--interval 1.5]``

Each session is the one ``benchmarks.session_latency`` runs (``rig.session.run.shoot`` on the
simulated rig, one pre-rendered JPEG landing every ``--interval`` s, the stacking worker reading
and stacking them from disk as they land, previews and journal included, the outputs written),
each in a fresh process started from the small launcher of ``benchmarks/launch.py``, so that
its peak RSS (``ru_maxrss`` from ``wait4``: everything in the process, interpreter and libraries
included) is its own and the sessions' peaks do not mix. The frames are rendered beforehand
(cached under ``bench-out/session-frames/``), so the renderer is in neither process. Target:
the longest session's peak within 10 % of the shortest's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from benchmarks.launch import run_measured
from benchmarks.run import REPO, parse_size
from benchmarks.simsession import prerendered

TARGET_RATIO = 1.10


def session(shots: int, size: tuple[int, int], interval_s: float) -> tuple[dict, float]:
    """(the session's figures, its peak RSS in MiB) from a fresh child process."""
    argv = [sys.executable, "-m", "benchmarks.session_latency", "--shots", str(shots),
            "--size", f"{size[0]}x{size[1]}", "--interval", str(interval_s), "--json"]  # fmt: skip
    with tempfile.TemporaryFile() as out:
        measured = run_measured(argv, REPO, stdout=out)
        out.seek(0)
        lines = out.read().decode().strip().splitlines()
    if measured.returncode != 0 or not lines:
        raise SystemExit(f"the {shots}-shot session failed (exit status {measured.returncode})")
    return json.loads(lines[-1]), measured.peak_rss_kib / 1024


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.session_memory")
    p.add_argument("--size", type=parse_size, default=(6000, 4000))
    p.add_argument("--shots", default="30,60", help="comma-separated session lengths")
    p.add_argument("--interval", type=float, default=1.5, help="seconds between shots")
    args = p.parse_args(argv)
    lengths = sorted({int(n) for n in args.shots.split(",")})
    w, h = args.size
    for shots in lengths:  # all rendered before any session is measured
        prerendered(w, h, shots)
    print(
        f"peak RSS of capture sessions on the simulated rig, {w}x{h} JPEG, one shot every "
        f"{args.interval:.2f} s, each session in a fresh process"
    )
    peaks = {}
    for shots in lengths:
        figures, peaks[shots] = session(shots, args.size, args.interval)
        print(
            f"  {shots:3d} shots: peak RSS {peaks[shots]:6.0f} MiB   ({figures['accepted']} "
            f"stacked in {figures['wall_s']:.0f} s; last frame saved -> stack.tif "
            f"{figures['latency_s']:.2f} s)",
            flush=True,
        )
    short, long = lengths[0], lengths[-1]
    ratio = peaks[long] / peaks[short]
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"  {long} shots / {short} shots: x{ratio:.3f}   (target within "
        f"{(TARGET_RATIO - 1) * 100:.0f} %: {verdict})"
    )


if __name__ == "__main__":
    main()
