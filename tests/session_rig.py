"""The simulated rig for in-process session tests: the GRBL emulator on its pty through the
real driver, the simulated camera (the rendered frame, written as a download is), the stacking
worker on the frames, and a fresh session folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rig.devices.motion import Rail
from rig.devices.rails.registry import make_driver
from rig.profiles import Profile
from rig.profiles.schema import PlanSection, RailSection
from rig.session.journal import read_journal
from rig.session.plan import Plan
from rig.session.run import new_session, open_session, shoot
from rig.simrig.camera import SimulatedCamera
from rig.simrig.rig import SimulatedRig
from rig.simrig.subject import SubjectSettings

SUBJECT = SubjectSettings(width=240, height=160, depth_um=800.0)
POSITIONS = 6
PLANNED = [i * SUBJECT.depth_um / (POSITIONS - 1) for i in range(POSITIONS)]


def profile(on_fault: str = "retry", shots_per_position: int = 1) -> Profile:
    return Profile(
        name="faults",
        rail=RailSection(protocol="grbl", speed_mm_s=20.0, settle_s=0.0, backlash_um=30.0),
        plan=PlanSection(on_fault=on_fault, shots_per_position=shots_per_position),
    )


class Rig:
    """The simulated rig with a connected rail, a camera, and a fresh session."""

    def __init__(
        self,
        tmp: Path,
        prof: Profile,
        plan: Plan | None = None,
        subject: SubjectSettings = SUBJECT,
    ) -> None:
        self.tmp, self.profile = tmp, prof
        self.sim = SimulatedRig("grbl", tmp, subject).start()
        self.rail = self.connect()
        self.rail.set_zero()
        self.camera = SimulatedCamera(self.sim)
        plan = plan or Plan.from_start_end_count(
            0.0, SUBJECT.depth_um, POSITIONS, shots_per_position=prof.plan.shots_per_position
        )
        self.folder, self.journal = new_session(prof, plan, tmp / "captures")

    def connect(self) -> Rail:
        rail = Rail(make_driver(self.profile.rail, self.sim.port), self.profile.motion_settings())
        rail.connect()
        return rail

    def shoot(self, camera: Any = None, **options: Any) -> Any:
        return shoot(
            self.folder,
            self.journal,
            self.rail,
            camera or self.camera,
            before_shot=self.sim.before_shot,
            **options,
        )

    def resume(self, finished: bool = False, **options: Any) -> Any:
        self.journal.close()
        self.folder, self.journal = open_session(self.folder.path, finished=finished)
        return self.shoot(**options)

    def close(self) -> None:
        self.journal.close()
        self.rail.close()
        self.sim.close()

    def events(self) -> list[Any]:
        return read_journal(self.folder.journal)

    def frames(self) -> list[str]:
        return sorted(p.name for p in self.folder.frames.iterdir() if p.is_file())
