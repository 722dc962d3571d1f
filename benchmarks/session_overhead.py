"""What the capture session itself costs per shot, beyond the devices' own time.

``python -m benchmarks.session_overhead [--shots 40] [--size 1200x800]``

A session on the simulated rig (the GRBL emulator on a pty through the real driver, zero
settle; the simulated camera writing the rendered frame, fsync'd) with the stacking worker on.
Per shot, the rail's ``move_to`` and the camera's ``capture`` are timed where they are called;
the session's own cost is the rest of the shot (position read-back, saving with rename, fsync
and sha256, the journal's fsync'd lines, handing the frame to the stacker). The simulated
rig's frame rendering happens in its ``before_shot`` hook and is timed apart, as it stands in
for the scene in front of a real lens. Target: under 30 ms per shot.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rig.devices.motion import MotionSettings, Rail
from rig.devices.rails.registry import make_driver
from rig.profiles import Profile
from rig.profiles.schema import RailSection
from rig.session.capture import CaptureSession, Shot
from rig.session.folder import create_session_folder, write_session_file
from rig.session.journal import Journal
from rig.session.stacker import StackingWorker, StackJob
from rig.simrig.camera import SimulatedCamera
from rig.simrig.rig import SimulatedRig
from rig.simrig.subject import SubjectSettings
from stacking.settings import StackSettings


class Timed:
    """Adds the time spent in ``method`` of ``target`` to ``spent``."""

    def __init__(self, target: Any, method: str, spent: list[float]) -> None:
        self._target, self._method, self._spent = target, method, spent

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name != self._method:
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._spent.append(time.perf_counter() - start)

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=40)
    parser.add_argument("--size", default="1200x800")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    moves: list[float] = []
    captures: list[float] = []
    renders: list[float] = []
    shots: list[Shot] = []
    positions = [i * 50.0 for i in range(args.shots)]
    with tempfile.TemporaryDirectory(prefix="stackrig-bench-") as tmp:
        work = Path(tmp)
        subject = SubjectSettings(width=width, height=height, depth_um=positions[-1] or 1.0)
        with SimulatedRig("grbl", work, subject) as rig:
            section = RailSection(protocol="grbl", speed_mm_s=20.0)
            rail = Rail(make_driver(section, rig.port), MotionSettings(speed_um_s=20000.0))
            rail.connect()
            rail.set_zero()
            now = datetime.now()
            folder = create_session_folder(work / "captures", "bench", now)
            write_session_file(folder, Profile(name="bench"), {"positions_um": positions}, now)
            journal = Journal.create(folder.journal)
            stacker = StackingWorker(StackJob(StackSettings(), folder.outputs)).start()

            def render(index: int) -> None:
                start = time.perf_counter()
                rig.before_shot(index)
                renders.append(time.perf_counter() - start)

            session = CaptureSession(
                folder,
                journal,
                positions,
                Timed(rail, "move_to", moves),  # type: ignore[arg-type]
                Timed(SimulatedCamera(rig), "capture", captures),  # type: ignore[arg-type]
                stacker,
                before_shot=render,
                on_shot=shots.append,
            )
            session.run(range(1, args.shots + 1))
            stacker.finish()
            rail.close()
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
