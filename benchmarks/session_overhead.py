"""What the capture session itself costs per shot, beyond the devices' own time.

``python -m benchmarks.session_overhead [--shots 40] [--size 1200x800]``

A session on the simulated rig (``benchmarks/simsession.py``: the GRBL emulator on a pty through
the real driver, zero settle; the simulated camera writing the rendered frame, fsync'd) with the
stacking worker on. Per shot, the rail's ``move_to`` and the camera's ``capture`` are timed where
they are called; the session's own cost is the rest of the shot (position read-back, saving with
rename, fsync and sha256, the journal's fsync'd lines, handing the frame to the stacker). The
simulated rig's frame rendering happens in its ``before_shot`` hook and is timed apart, as it
stands in for the scene in front of a real lens. Target: under 30 ms per shot.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.run import parse_size
from benchmarks.simsession import Timed, simulated_session, subject_settings
from rig.session.capture import CaptureSession, Shot
from rig.session.stacker import StackingWorker, StackJob
from rig.simrig.camera import SimulatedCamera
from stacking.settings import StackSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=40)
    parser.add_argument("--size", type=parse_size, default=(1200, 800))
    args = parser.parse_args()
    width, height = args.size
    moves: list[float] = []
    captures: list[float] = []
    renders: list[float] = []
    shots: list[Shot] = []
    with simulated_session(args.shots, subject_settings(width, height, args.shots)) as sim:
        rig = sim.rig
        assert rig is not None
        stacker = StackingWorker(StackJob(StackSettings(), sim.folder.outputs)).start()

        def render(index: int) -> None:
            start = time.perf_counter()
            rig.before_shot(index)
            renders.append(time.perf_counter() - start)

        session = CaptureSession(
            sim.folder,
            sim.journal,
            sim.positions,
            Timed(sim.rail, "move_to", moves),
            Timed(SimulatedCamera(rig), "capture", captures),
            stacker,
            before_shot=render,
            on_shot=shots.append,
        )
        session.run(range(1, args.shots + 1))
        stacker.finish()
    own = [
        s.seconds - m - c - r for s, m, c, r in zip(shots, moves, captures, renders, strict=True)
    ]
    ms = 1000.0
    print(f"capture session on the simulated rig: {args.shots} shots, {width}x{height} JPEG")
    print(f"  rail move_to (20 mm/s, 50 um)   median {ms * statistics.median(moves):6.1f} ms")
    print(f"  camera capture (simulated)      median {ms * statistics.median(captures):6.1f} ms")
    print(f"  scene rendering (simulator)     median {ms * statistics.median(renders):6.1f} ms")
    print(
        f"  session's own work per shot     median {ms * statistics.median(own):6.1f} ms, "
        f"worst {ms * max(own):.1f} ms   (target < 30 ms)"
    )


if __name__ == "__main__":
    main()
