"""`stackrig capture` as an operator runs it: on the simulated rig, killed, resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import stackrig_process

from rig.cli import main
from rig.session.journal import read_journal
from stacking.io import read_image

STACKRIG = [sys.executable, "-m", "rig.cli"]


def _capture(tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, STACKRIG_HOME=str(tmp / "home"))
    return stackrig_process("capture", "--simulate", *args, env=env)


def test_killed_mid_run_then_resumed_shoots_every_position_once(tmp_path: Path) -> None:
    out = tmp_path / "captures"
    first = _capture(tmp_path, "--count", "12", "--output", str(out))
    deadline = time.monotonic() + 60
    frames: list[Path] = []
    while len(frames) < 4 and time.monotonic() < deadline:  # kill it part-way
        frames = list(out.glob("*/frames/*.jpg"))
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=20)
    (session,) = out.iterdir()
    assert 4 <= len(list((session / "frames").glob("*.jpg"))) < 12
    resumed = _capture(tmp_path, "--resume", str(session))
    said, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, said
    names = sorted(p.name for p in (session / "frames").glob("*.jpg"))
    assert [int(n.split("_")[0]) for n in names] == list(range(1, 13))  # each once, none lost
    saved = [e for e in read_journal(session / "journal.jsonl") if e.type == "file_saved"]
    assert sorted(e["name"] for e in saved) == names
    preview = read_image(session / "preview.jpg").pixels  # the stack so far, every 5 frames
    assert preview.shape[2] == 3 and max(preview.shape[:2]) <= 1024
    # The resumed stack is the stack of those frames, as an uninterrupted run would make it.
    offline = tmp_path / "offline.tif"
    assert main(["stack", str(session / "frames"), "-o", str(offline), "--quiet"]) == 0
    ours = read_image(session / "stack.tif").pixels.astype(np.int32)
    theirs = read_image(offline).pixels.astype(np.int32)
    assert np.abs(ours - theirs).max() <= 1


def test_ctrl_c_stops_resumably_and_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "captures"
    run = _capture(tmp_path, "--count", "12", "--output", str(out))
    deadline = time.monotonic() + 60
    while not list(out.glob("*/frames/*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    said, _ = run.communicate(timeout=30)
    assert run.returncode == 130, said
    assert "capture --resume" in said and "rail was stopped" in said
    (session,) = out.iterdir()
    events = read_journal(session / "journal.jsonl")
    assert events[-1].type == "session_finished" and events[-1]["outcome"] == "aborted"


def test_a_dry_run_moves_through_the_plan_and_shoots_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "captures"
    argv = ["capture", "--simulate", "--count", "4", "--dry-run", "--output", str(out)]
    assert main(argv) == 0
    said = capsys.readouterr()
    assert "dry run: 4 positions reached (0.0 -> 300.0 um)" in said.out
    assert "position 4/4: 300.0 um" in said.err  # where the controller said it stood
    assert not out.exists()  # no session, no folder
    assert main([*argv, "--resume", str(tmp_path)]) == 2


def test_one_point_mode_starts_where_the_rail_is() -> None:
    import argparse

    from rig.cli.capture import _from_here, _plan, _profile

    args = argparse.Namespace(simulate=True, profile=None, start=None, end=None, step=None, count=3)
    profile = _profile(args)
    checked = _plan(args, profile, None)  # before the rail is connected: relative
    assert checked.relative

    class At:  # the one thing asked of the connected rail
        def position_um(self) -> float:
            return 2500.0

    plan = _from_here(args, profile, checked, At())
    assert plan.positions_um == (2500.0, 2600.0, 2700.0)  # the profile's 100 um step
    fixed = argparse.Namespace(**{**vars(args), "start": 0.0, "end": 200.0})
    assert _from_here(fixed, profile, _plan(fixed, profile, None), At()).first_um == 0.0


def _profile_file(tmp: Path, port: str) -> Path:
    """The simulated profile with the rail on ``port`` (a rail the test runs, as a real one)."""
    text = (REPO / "profiles" / "simulated.toml").read_text()
    path = tmp / "bench.toml"
    path.write_text(text.replace('port = "/dev/stackrig-rail"', f'port = "{port}"'))
    return path


REPO = Path(__file__).resolve().parents[1]


def test_a_real_rail_with_the_virtual_camera_refuses_to_start_unreferenced(tmp_path: Path) -> None:
    """``--simulate camera``: the rail is the operator's (here an emulator the test runs, as
    a controller would be); a fresh controller does not know where it is, so nothing starts
    until it is zeroed. Then the virtual camera shows the subject where the rail reports."""
    from rig.devices.rails.registry import make_emulator

    with make_emulator("grbl") as rail:
        profile = _profile_file(tmp_path, rail.path)
        out = tmp_path / "captures"
        argv = ["capture", "--profile", str(profile), "--count", "4", "--output", str(out)]
        run = stackrig_process(*argv, "--simulate", "camera")
        said, _ = run.communicate(timeout=60)
        assert run.returncode == 1, said
        assert "not referenced" in said and "stackrig rail zero" in said
        assert not out.exists()  # refused before any folder was made
        zero = stackrig_process("rail", "--profile", str(profile), "zero")
        assert zero.wait(timeout=30) == 0
        run = stackrig_process(*argv, "--simulate", "camera")
        said, _ = run.communicate(timeout=120)
        assert run.returncode == 0, said
        assert "camera: Nikon DSC D750" in said  # the virtual camera, through PTP
    (session,) = out.iterdir()
    reached = [e["position_um"] for e in read_journal(session / "journal.jsonl")
               if e.type == "position_reached"]  # fmt: skip
    assert reached == pytest.approx([0.0, 100.0, 200.0, 300.0], abs=1.0)


def test_lens_focus_stepping_shoots_as_a_rail_does(tmp_path: Path) -> None:
    """``rail.protocol = "lens"`` on the simulated rig: the real lens driver (Nikon drive)
    steps a simulated focus motor; the virtual camera shows where the lens focuses."""
    out = tmp_path / "captures"
    run = _capture(tmp_path, "--profile", "lens-focus-mirrorless", "--start", "0", "--end",
                   "1200", "--step", "240", "--output", str(out))  # fmt: skip
    said, _ = run.communicate(timeout=120)
    assert run.returncode == 0, said
    assert "lens focus (manualfocusdrive range" in said
    (session,) = out.iterdir()
    names = sorted(p.name for p in (session / "frames").glob("*.jpg"))
    assert names == [f"{i:04d}_lens+{240.0 * (i - 1):.1f}um.jpg" for i in range(1, 7)]
    assert (session / "stack.tif").is_file()


def test_a_shoot_the_disk_cannot_hold_is_refused_before_anything_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=100 * 10**6))
    out = tmp_path / "captures"
    argv = ["capture", "--simulate", "--count", "20", "--output", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "needs about 0.3 GB" in err and "0.1 GB free" in err and "--output" in err
    assert "rail:" not in err and not out.exists()  # no device opened, no folder made


def test_on_fault_is_a_profile_option_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["capture", "--simulate", "--count", "3", "--on-fault", "later"])
    assert usage.value.code == 2
    assert "choose from 'retry', 'skip', 'stop'" in capsys.readouterr().err


def test_a_run_longer_than_the_virtual_cameras_store_stays_on_the_ptp_path(tmp_path: Path) -> None:
    """libgphoto2's virtual camera serves about 26 captures per process: the camera process is
    renewed before that, so all 30 frames come through the real PTP driver."""
    out = tmp_path / "captures"
    run = _capture(tmp_path, "--count", "30", "--output", str(out), "--quiet")
    said, _ = run.communicate(timeout=240)
    assert run.returncode == 0, said
    (session,) = out.iterdir()
    names = sorted(p.name for p in (session / "frames").glob("*.jpg"))
    assert [int(n[:4]) for n in names] == list(range(1, 31))
    import hashlib

    digests = {hashlib.sha256((session / "frames" / n).read_bytes()).digest() for n in names}
    assert len(digests) == 30  # each the frame of its own position, not one file served again
    assert "stacked 30 frames" in said


def test_the_emulated_rail_with_the_real_camera_path(tmp_path: Path) -> None:
    """``--simulate rail``: the camera is opened as a real one (here libgphoto2 finds its
    virtual camera, since VCAMERADIR is set as a USB camera would be plugged in)."""
    from rig.simrig.camera_feed import CameraFeed
    from rig.simrig.subject import Subject

    CameraFeed.for_frames(tmp_path / "vcamera", Subject().frame(0.0))
    env = dict(os.environ, STACKRIG_HOME=str(tmp_path / "home"))
    env.update(VCAMERADIR=str(tmp_path / "vcamera"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    out = tmp_path / "captures"
    run = stackrig_process("capture", "--simulate", "rail", "--count", "4", "--output", str(out),
                           env=env)  # fmt: skip
    said, _ = run.communicate(timeout=120)
    assert run.returncode == 0, said
    assert "rail: simulated" in said and "camera: Nikon DSC D750" in said
    (session,) = out.iterdir()
    assert len(list((session / "frames").glob("*.jpg"))) == 4
