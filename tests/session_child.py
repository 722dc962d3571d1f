"""Run a capture session on the simulated rig in a fresh process; print findings as JSON.

Usage: VCAMERADIR=<TMP>/vcamera python session_child.py TMP SHOTS [ABORT_AFTER]

A process of its own: libgphoto2's virtual camera reads VCAMERADIR when gphoto2 loads and
serves about 26 captures per process. The parent made the served file (CameraFeed) first.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from rig.devices.gphoto import GPhotoCamera
from rig.devices.motion import MotionSettings, Rail
from rig.devices.rails.registry import make_driver
from rig.profiles import Profile
from rig.profiles.schema import RailSection
from rig.session.capture import CaptureSession, SessionStopped
from rig.session.folder import create_session_folder, write_session_file
from rig.session.journal import Journal
from rig.session.stacker import StackingWorker, StackJob
from rig.simrig.rig import SimulatedRig
from rig.simrig.subject import SubjectSettings
from stacking import geometry, io
from stacking.settings import StackSettings

SUBJECT = SubjectSettings(width=480, height=320, depth_um=2000.0)


class _Camera:
    def __init__(self, camera: GPhotoCamera) -> None:
        self.camera = camera

    def capture(self, folder: Path) -> list[Path]:
        return self.camera.capture(folder, delete_after=True)  # virtual RAM: keep it from filling


def main() -> None:
    tmp, shots = Path(sys.argv[1]), int(sys.argv[2])
    abort_after = int(sys.argv[3]) if len(sys.argv) > 3 else None
    positions = [i * SUBJECT.depth_um / (shots - 1) for i in range(shots)]
    with SimulatedRig("grbl", tmp, SUBJECT) as rig:
        rail = Rail(
            make_driver(RailSection(protocol="grbl", speed_mm_s=20.0), rig.port),
            MotionSettings(backlash_um=50.0, speed_um_s=20000.0),
        )
        rail.connect()
        rail.set_zero()
        camera = GPhotoCamera()
        camera.connect()
        folder = create_session_folder(
            tmp / "captures", "simulated", datetime(2026, 12, 2, 1, 2, 3)
        )
        write_session_file(
            folder, Profile(name="simulated"), {"positions_um": positions}, datetime.now()
        )
        journal = Journal.create(folder.journal)
        journal.append("session_started", plan={"positions_um": positions})
        stacker = StackingWorker(StackJob(StackSettings(), folder.outputs)).start()
        session = CaptureSession(
            folder, journal, positions, rail, _Camera(camera), stacker,
            before_shot=lambda index: rig.before_shot(index),
        )  # fmt: skip
        if abort_after is not None:
            session.on_shot = lambda shot: session.abort() if shot.index >= abort_after else None
        outcome = "done"
        try:
            session.run(range(1, shots + 1))
        except SessionStopped as exc:
            outcome = exc.outcome
            stacker.abort()
        result: dict[str, object] = {"outcome": outcome, "carriage_um": rig.carriage_um()}
        if outcome == "done":
            stacked = stacker.finish()
            journal.append("session_finished", outcome="done")
            truth = rig.subject.all_in_focus().astype(np.float64)
            image = io.read_image(stacked.outputs.image).pixels.astype(np.float64)
            if image.max() > 255:
                image = image / 257.0
            image = geometry.uncrop(image, stacked.result.crop, truth.shape)
            h, w = truth.shape[:2]
            crop = (slice(h // 20, h - h // 20), slice(w // 20, w - w // 20))
            mse = float(np.mean((image[crop] - truth[crop]) ** 2))
            result["psnr"] = 10 * np.log10(255.0**2 / mse)
            result["stack"] = str(stacked.outputs.image)
        rail.close()
        camera.close()
    result["session"] = str(folder.path)
    result["frames"] = sorted(p.name for p in folder.frames.iterdir() if p.is_file())
    result["events"] = [e.type for e in journal.events]
    result["reached"] = [e["position_um"] for e in journal.events if e.type == "position_reached"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
