"""The simulated capture session the session benchmarks share.

:func:`simulated_session` builds what ``stackrig capture --simulate`` drives, with the devices'
own waits cut out: the GRBL firmware emulator on a pty, driven through the real driver and
:class:`~rig.devices.motion.Rail` (20 mm/s, zero settle), a new session folder with its
``session.toml`` (shots every :data:`STEP_UM`) and an open journal. Given a subject, the
simulated rig renders it in this process (``rig.before_shot``) for :class:`SimulatedCamera`.

At 24 MP the renderer holds about 1.3 GB and takes about 6 s a frame, which would swamp what
a session benchmark measures (pacing, memory). :func:`prerendered` renders a plan's frames
once, in a child process, as the JPEG bytes the simulated camera would write for them, cached
under ``bench-out/session-frames/``; :class:`PacedCamera` then "shoots" them one per interval.

``python -m benchmarks.simsession OUT --size WxH --shots N`` is that renderer child.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.run import BENCH_OUT, REPO, parse_size
from rig.devices.motion import MotionSettings, Rail
from rig.devices.rails.registry import make_driver, make_emulator
from rig.profiles import Profile
from rig.profiles.schema import RailSection
from rig.session.folder import SessionFolder, create_session_folder, write_session_file
from rig.session.journal import Journal
from rig.simrig.camera import write_download
from rig.simrig.rig import SimulatedRig
from rig.simrig.subject import SubjectSettings

STEP_UM = 50.0  # between shots; the subject's depth spans the plan
RAIL = RailSection(protocol="grbl", speed_mm_s=20.0, settle_s=0.0)
RENDER_VERSION = 1  # bump when the rendered frames change


def plan_positions(shots: int) -> list[float]:
    return [i * STEP_UM for i in range(shots)]


def subject_settings(width: int, height: int, shots: int) -> SubjectSettings:
    """The subject a plan of ``shots`` shoots: its depth spans the plan exactly."""
    return SubjectSettings(width=width, height=height, depth_um=plan_positions(shots)[-1] or 1.0)


@dataclass
class SimSession:
    rail: Rail  # connected, zeroed
    folder: SessionFolder
    journal: Journal
    positions: list[float]
    rig: SimulatedRig | None  # with a subject: renders it before each shot


@contextmanager
def simulated_session(shots: int, subject: SubjectSettings | None = None) -> Iterator[SimSession]:
    """A new session of ``shots`` shots on the simulated rail, in a temporary folder."""
    positions = plan_positions(shots)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stackrig-bench-")))
        rig = None
        if subject is not None:
            rig = stack.enter_context(SimulatedRig("grbl", work, subject))
            port = rig.port
        else:  # the rail alone: the frames come from elsewhere
            port = stack.enter_context(make_emulator("grbl")).path
        rail = Rail(make_driver(RAIL, port), MotionSettings(speed_um_s=RAIL.speed_mm_s * 1000))
        rail.connect()
        stack.callback(rail.close)
        rail.set_zero()
        now = datetime.now()
        folder = create_session_folder(work / "captures", "bench", now)
        write_session_file(
            folder, Profile(name="bench", rail=RAIL), {"positions_um": positions}, now
        )
        journal = Journal.create(folder.journal)
        stack.callback(journal.close)
        yield SimSession(rail, folder, journal, positions, rig)


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


# ------------------------------------------------------------------------ pre-rendered frames


def prerendered(width: int, height: int, shots: int) -> list[Path]:
    """The JPEGs a ``shots``-shot plan sees on the simulated rig, rendered on first use."""
    out = BENCH_OUT / "session-frames" / f"{width}x{height}-n{shots}"
    frames = [out / f"{i:04d}.jpg" for i in range(1, shots + 1)]
    meta = out / "meta.json"  # written last: its presence means the set is complete
    done = meta.is_file() and json.loads(meta.read_text()).get("version") == RENDER_VERSION
    if done and all(p.is_file() for p in frames):
        return frames
    print(f"  rendering {shots} frames of {width}x{height} into {out} (once) ...", flush=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "benchmarks.simsession", str(out), "--size", f"{width}x{height}",
         "--shots", str(shots)],
        check=True, cwd=REPO,
    )  # fmt: skip
    print(f"  rendered in {time.perf_counter() - start:.0f} s", flush=True)
    return frames


def render(out: Path, width: int, height: int, shots: int) -> None:
    """Render the plan's frames as the simulated rig shows them (shot i at its position, the
    subject's shake and noise for shot i) and JPEG-encode them as the simulated camera does."""
    from rig.simrig.camera_feed import QUALITIES, encode_jpeg
    from rig.simrig.subject import Subject

    subject = Subject(subject_settings(width, height, shots))
    out.mkdir(parents=True, exist_ok=True)
    for index, position in enumerate(plan_positions(shots), 1):
        data = encode_jpeg(subject.frame(position, index), QUALITIES[0])
        path = out / f"{index:04d}.jpg"
        path.with_suffix(".tmp").write_bytes(data)
        path.with_suffix(".tmp").replace(path)
    meta = {"version": RENDER_VERSION, "width": width, "height": height, "shots": shots}
    (out / "meta.json").write_text(json.dumps(meta))


class PacedCamera:
    """The simulated camera shooting pre-rendered frames, one every ``interval_s``.

    Shot k is taken ``(k - 1) * interval_s`` after the first: the wait stands in for the rail's
    move, the exposure and the download a real rig spends (whatever the session itself spent
    since the last shot is taken out of the wait). The frame is then written into the download
    folder and fsync'd, as :class:`~rig.simrig.camera.SimulatedCamera` writes it.
    """

    def __init__(self, frames: Sequence[Path], interval_s: float) -> None:
        self.frames, self.interval_s = list(frames), interval_s
        self.waits: list[float] = []  # how long each shot waited for its slot
        self._first: float | None = None

    def capture(self, folder: Path) -> list[Path]:
        shot = len(self.waits)
        now = time.perf_counter()
        if self._first is None:
            self._first = now
        wait = max(0.0, self._first + shot * self.interval_s - now)
        time.sleep(wait)
        self.waits.append(wait)
        data = self.frames[shot].read_bytes()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"SIM_{shot + 1:04d}.jpg"
        write_download(path, data)
        return [path]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="render a session plan's frames (child process)")
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=parse_size, required=True)
    p.add_argument("--shots", type=int, required=True)
    args = p.parse_args(argv)
    width, height = args.size
    render(args.out, width, height, args.shots)


if __name__ == "__main__":
    main()
