"""A capture session on the simulated rig: the GRBL emulator through the real driver, the
virtual camera through the real PTP driver, the stacking worker on the frames as they land."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rig.cli import main
from rig.session.folder import SessionFolder
from rig.session.journal import read_journal
from rig.simrig.camera_feed import CameraFeed
from rig.simrig.subject import Subject
from stacking import geometry
from stacking.io import read_image

CHILD = Path(__file__).with_name("session_child.py")
REPO = Path(__file__).resolve().parents[1]


def run_session(tmp: Path, shots: int, *extra: str) -> dict[str, Any]:
    from session_child import SUBJECT

    CameraFeed.for_frames(tmp / "vcamera", Subject(SUBJECT).frame(0.0))  # before the camera opens
    env = {k: v for k, v in os.environ.items() if k not in ("IOLIBS", "CAMLIBS")}
    env.update(VCAMERADIR=str(tmp / "vcamera"), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(CHILD), str(tmp), str(shots), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _psnr(image: np.ndarray, truth: np.ndarray) -> float:
    """PSNR on the central 90 % (the frame edges see what the breathing brought in)."""
    h, w = truth.shape[:2]
    crop = (slice(h // 20, h - h // 20), slice(w // 20, w - w // 20))
    mse = float(np.mean((image[crop].astype(np.float64) - truth[crop]) ** 2))
    return 10 * math.log10(255.0**2 / mse)


def test_a_session_shoots_journals_and_stacks_every_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from session_child import SUBJECT

    shots = 20
    result = run_session(tmp_path, shots)
    assert result["outcome"] == "done"
    frames = result["frames"]
    assert len(frames) == shots and frames[0].startswith("0001_z+0.0um")
    positions = [i * 2000.0 / (shots - 1) for i in range(shots)]
    assert result["reached"] == pytest.approx(positions, abs=4.0)  # GRBL's 4 um steps
    events = result["events"]
    # Each shot: requested, reached, saved, in that order, before the next shot.
    per_shot = [e for e in events if e in ("shot_requested", "position_reached", "file_saved")]
    assert per_shot == ["shot_requested", "position_reached", "file_saved"] * shots
    assert events[-1] == "session_finished"
    journal = read_journal(Path(result["session"]) / "journal.jsonl")
    saved = [e for e in journal if e.type == "file_saved"]
    on_disk = SessionFolder(Path(result["session"])).frames
    for event, name in zip(saved, frames, strict=True):
        assert event["name"] == name and event["size"] == (on_disk / name).stat().st_size
    assert result["psnr"] > 25.0, result["psnr"]  # the stack is the scene, in focus
    # Stacked while shooting = stacked afterwards by 'stackrig stack' on the same frames.
    offline = tmp_path / "offline.tif"
    assert main(["stack", str(on_disk), "-o", str(offline), "--quiet"]) == 0
    capsys.readouterr()
    pixels = read_image(offline).pixels
    truth = Subject(SUBJECT).all_in_focus()
    crop = json.loads(offline.with_name("offline.tif.stack.json").read_text())["crop"]
    pixels = geometry.uncrop(pixels, None if crop is None else tuple(crop), truth.shape)
    offline_psnr = _psnr(pixels if pixels.dtype == np.uint8 else pixels / 257.0, truth)
    print(f"session stack {result['psnr']:.2f} dB, offline stack {offline_psnr:.2f} dB")
    assert abs(result["psnr"] - offline_psnr) < 0.5


def test_an_aborted_session_stops_between_shots_and_says_so(tmp_path: Path) -> None:
    result = run_session(tmp_path, 8, "3")
    assert result["outcome"] == "aborted"
    assert len(result["frames"]) == 3  # the shot under way finished, no later one started
    assert result["events"].count("shot_requested") == 3
    assert result["events"][-1] == "session_finished"
