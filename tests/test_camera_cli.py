"""`stackrig camera ...` from a shell, on libgphoto2's virtual camera (fresh process each:
VCAMERADIR must be set before gphoto2 loads)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from rig.cli.camera import SIMULATED_SCENE


def _stackrig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig.cli", "camera", *args, "--simulate"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_list_and_summary() -> None:
    listed = _stackrig("list")
    assert listed.returncode == 0, listed.stderr
    assert "Nikon DSC D750" in listed.stdout
    summary = _stackrig("summary")
    assert summary.returncode == 0, summary.stderr
    assert "battery  50%" in summary.stdout and "GB free of" in summary.stdout


def test_config_read_set_and_bad_value() -> None:
    got = _stackrig("config", "aperture", "8")
    assert got.returncode == 0, got.stderr
    assert "f-number = f/8" in got.stdout and "choices: f/2.8" in got.stdout
    bad = _stackrig("config", "f-number", "f/1.0")
    assert bad.returncode == 1
    assert "f/2.8" in bad.stderr  # names the choices the camera offers


def test_capture_into_a_folder(tmp_path: Path) -> None:
    run = _stackrig("capture", "-o", str(tmp_path / "shots"))
    assert run.returncode == 0, run.stderr
    files = list((tmp_path / "shots").iterdir())
    assert len(files) == 1 and files[0].suffix == ".JPG"
    assert files[0].read_bytes() == next(SIMULATED_SCENE.glob("*.jpg")).read_bytes()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o666 & ~mask  # like any file, not private
    assert "saved" in run.stdout
