"""The real GRBL 1.1h firmware on a simulated Arduino Uno, as a test fixture.

``../shared/tools/grbl-sim/`` holds the unmodified firmware and a small simavr runner that puts
its UART on a pseudo-terminal. :func:`runner` builds that runner into ``build/grbl-sim/`` (shared/
is read-only in CI); :class:`GrblSim` starts it for one scenario and reads back what the firmware
did: the step pulses it counted (the truth about where the carriage is), the last burst of
pulses (the true motion time), and it closes limit switches through the runner's FIFO.

No skipping: when the runner cannot be built this raises, and the tests using it fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STACKRIG_SHARED", REPO.parent / "shared"))
SOURCE = SHARED / "tools" / "grbl-sim"
HEX = SOURCE / "grbl-1.1h-atmega328p.hex"
BUILD = REPO / "build" / "grbl-sim"
APT = (
    "apt-get install -y simavr libsimavr-dev libsimavrparts1 build-essential pkg-config libelf-dev"
)
LIBS = ("-lsimavrparts", "-lsimavr", "-lelf", "-lpthread", "-lutil")  # see the sim's README
STEPS_PER_MM = 250.0  # GRBL's compiled-in default for $100..$102


def runner() -> Path:
    """The runner binary, built from the shared C source when missing or older than it."""
    binary = BUILD / "simavr_grbl_runner"
    source = SOURCE / "simavr_grbl_runner.c"
    if not source.exists():
        raise RuntimeError(f"no GRBL simulator source at {source}: is ../shared beside the repo?")
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    if shutil.which("pkg-config") is None:
        raise RuntimeError(f"pkg-config is missing; install the simulator's packages: {APT}")
    flags = subprocess.run(
        ["pkg-config", "--cflags", "simavr", "simavrparts"], capture_output=True, text=True
    )
    if flags.returncode != 0:
        raise RuntimeError(f"simavr is not installed ({flags.stderr.strip()}): {APT}")
    BUILD.mkdir(parents=True, exist_ok=True)
    build = subprocess.run(
        ["gcc", "-O2", "-o", str(binary), str(source), *flags.stdout.split(), *LIBS],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        raise RuntimeError(f"building the GRBL simulator failed:\n{build.stderr}\n{APT}")
    return binary


class GrblSim:
    """One runner process: GRBL on the pty ``link``, with status file, FIFO and EEPROM file.

    ``reset_on_open`` imitates an Uno's DTR auto-reset; ``eeprom`` keeps settings and G54
    offsets between starts (a fresh file is a blank EEPROM: GRBL restores its defaults).
    """

    def __init__(
        self,
        folder: Path,
        *,
        reset_on_open: bool = False,
        eeprom: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.link = folder / "grbl"
        self.status_file = folder / "grbl.status"
        self.ctl_file = folder / "grbl.ctl"
        self.eeprom = eeprom or folder / "grbl.eeprom"
        self.args = [
            str(runner()),
            "-l", str(self.link),
            "-e", str(self.eeprom),
            "-S", str(self.status_file),
            "-c", str(self.ctl_file),
            *(["-r"] if reset_on_open else []),
            *extra,
            str(HEX),
        ]  # fmt: skip
        self.log = folder / "runner.log"
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 10.0) -> GrblSim:
        self.process = subprocess.Popen(
            self.args, stdout=self.log.open("w"), stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + timeout_s
        while not (self.link.exists() and self.status_file.exists() and "RUNNING" in self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the GRBL simulator did not start:\n{self.output()}")
            time.sleep(0.02)
        # Let the power-on boot (banner, first-boot EEPROM restore) finish before a client opens.
        self.wait_sim(0.6)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def status(self) -> dict[str, Any]:
        """The runner's JSON status (rewritten every 20 ms); retried over a half-written file."""
        for _ in range(50):
            try:
                return dict(json.loads(self.status_file.read_text()))
            except (json.JSONDecodeError, FileNotFoundError):
                time.sleep(0.005)
        raise RuntimeError("the GRBL simulator's status file is unreadable")

    def steps(self, axis: str = "z") -> int:
        """Signed step count from the firmware's own STEP/DIR pins since power-on."""
        return int(self.status()["steps"][axis])

    def position_um(self, axis: str = "z") -> float:
        return self.steps(axis) / STEPS_PER_MM * 1000.0

    def last_burst(self, axis: str = "z") -> tuple[float, float, int]:
        """(first pulse, last pulse, pulses) in simulated seconds for the latest burst."""
        first, last, count = self.status()["last_burst"][axis]
        return float(first), float(last), int(count)

    def sim_s(self) -> float:
        return float(self.status()["sim_s"])

    def wait_sim(self, seconds: float) -> None:
        """Wait for ``seconds`` of simulated time (the simulation may lag the wall clock)."""
        until = self.sim_s() + seconds
        deadline = time.monotonic() + 10.0 * seconds + 2.0
        while self.sim_s() < until and time.monotonic() < deadline:
            time.sleep(0.01)

    def ctl(self, command: str) -> None:
        """One runner command: 'zlimit on', 'hwreset', ... (see the simulator's README)."""
        fd = os.open(self.ctl_file, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, command.encode() + b"\n")
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> GrblSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
