"""`stackrig rail` and `stackrig sim-rail` as a user runs them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from rig.cli import main
from rig.devices.emulators.grbl import GrblEmulator
from rig.devices.rails import ports

STACKRIG = [sys.executable, "-m", "rig.cli"]


@pytest.fixture
def grbl() -> Iterator[GrblEmulator]:
    with GrblEmulator() as emu:
        yield emu  # type: ignore[misc]


def test_status_move_zero(grbl: GrblEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["rail", "--port", grbl.path, "--protocol", "grbl", "--speed", "20"]
    assert main([*base, "status"]) == 0
    out = capsys.readouterr().out
    assert "GRBL 1.1h" in out and "position: not referenced" in out  # a fresh controller
    assert main([*base, "move", "1500"]) == 1
    assert "not referenced" in capsys.readouterr().err  # no absolute move before a zero
    assert main([*base, "zero"]) == 0
    assert "position: 0.0 um" in capsys.readouterr().out
    assert main([*base, "--backlash", "50", "move", "1500"]) == 0
    assert "position: 1500.0 um" in capsys.readouterr().out
    assert main([*base, "status"]) == 0  # the zero survives the reconnect
    assert "position: 1500.0 um" in capsys.readouterr().out


def test_probe_identifies_grbl_without_moving(grbl: GrblEmulator) -> None:
    result = ports.probe(grbl.path, timeout_s=1.0)
    assert result.protocol == "grbl"
    assert grbl.moves == [] and not any(b"G1" in chunk for chunk in grbl.received)


def test_bad_port_and_missing_options_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rail", "--port", "/dev/no-such-rail", "--protocol", "grbl", "status"]) == 1
    assert "not there" in capsys.readouterr().err
    assert main(["rail", "status"]) == 2
    assert "--port and --protocol" in capsys.readouterr().err
    assert main(["rail", "--port", "x", "--protocol", "tic", "status"]) == 2
    assert "steps per mm" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["grbl", "marlin", "sangaboard", "tic"])
def test_sim_rail_prints_a_path_that_works(protocol: str) -> None:
    proc = subprocess.Popen(
        [*STACKRIG, "sim-rail", "--protocol", protocol], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        path = first.split()[-1]
        assert path.startswith("/dev/")
        rail = [*STACKRIG, "rail", "--port", path, "--protocol", protocol,
                "--steps-per-mm", "1000", "--speed", "5"]  # fmt: skip
        for action in (["zero"], ["--backlash", "20", "jog", "400"]):
            run = subprocess.run([*rail, *action], capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
        # Marlin and the Sangaboard cannot tell a restart while the port was closed: they say
        # "not referenced" after every connect, with the count they read.
        assert re.search(r"position: (not referenced.*reads )?400\.0 um", run.stdout), run.stdout
        found = subprocess.run(
            [*STACKRIG, "rail", "probe", path], capture_output=True, text=True, timeout=60
        )
        assert found.returncode == 0, found.stderr
        assert f": {protocol} (" in found.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 10


def test_list_guesses_controllers_from_usb_ids(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serial.tools.list_ports_common import ListPortInfo

    uno = ListPortInfo("/dev/ttyACM0", skip_link_detection=True)
    uno.vid, uno.pid, uno.description = 0x2341, 0x0043, "Arduino Uno"
    tic = ListPortInfo("/dev/ttyACM1", skip_link_detection=True)
    tic.vid, tic.pid, tic.description = 0x1FFB, 0x00B5, "Pololu Tic"
    monkeypatch.setattr(ports.list_ports, "comports", lambda: [tic, uno])
    assert main(["rail", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("/dev/ttyACM0") and "2341:0043" in out[0] and "GRBL" in out[0]
    assert "Pololu Tic T834" in out[1]


def test_rail_takes_a_profile_and_overrides(
    grbl: GrblEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # simulated.toml: grbl, backlash 50 um from below, soft limits 0..10000 um.
    base = ["rail", "--profile", "simulated", "--port", grbl.path]
    assert main([*base, "zero"]) == 0
    assert main([*base, "move", "2000"]) == 0
    assert main([*base, "move", "1000"]) == 0  # from above: overshoot to 950, come back up
    ends = [end for _, end in grbl.moves]
    assert ends[-2:] == pytest.approx([0.95, 1.0], abs=0.004)  # GRBL stops on 4 um steps
    assert main([*base, "move", "20000"]) == 1
    assert "above the soft limit" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "connected"),
    [
        (["--protocol", "marlin", "--speed", "20"], "Marlin"),
        (["--protocol", "tic", "--steps-per-mm", "800", "--speed", "20"], "Tic"),
        (["--profile", "simulated"], "GRBL 1.1h"),  # the protocol comes from the profile
    ],
)
def test_simulate_drives_the_firmware_emulator(
    args: list[str], connected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rail", "move", "1000", "--simulate", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("connected: ") and connected in out.splitlines()[0]
    assert "position: 1000.0 um" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("protocol", ["grbl", "marlin"])
def test_ctrl_c_and_sigterm_stop_the_motion(protocol: str, sig: signal.Signals) -> None:
    from helpers import stackrig_process
    from rail_harness import GRBL, MARLIN, wait_until

    fw = {"grbl": GRBL, "marlin": MARLIN}[protocol]
    with fw.running(speed_mm_s=5.0) as emu:
        process = stackrig_process(
            "rail", "jog", "50000", "--port", emu.path, "--protocol", protocol, "--speed", "5"
        )
        wait_until(lambda: fw.moving(emu), timeout_s=10.0)
        process.send_signal(sig)
        out, _ = process.communicate(timeout=20)
        assert process.returncode == 130, out
        assert "interrupted: the rail was stopped; position:" in out
        assert not fw.moving(emu)  # stopped, not left running to the end of the jog
        assert fw.position_um(emu) < 40_000.0
