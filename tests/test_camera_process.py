"""The camera in its own process, against libgphoto2's real virtual camera (no mocks).

Each CameraProcess child imports gphoto2 with VCAMERADIR set from ``env``; this test process
never needs the variable. Hangs are made with SIGSTOP (the child stops answering mid-stream,
exactly what a stuck libgphoto2 call looks like from the parent), deaths with SIGKILL.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import cv2
import numpy as np
import pytest

from rig.devices.camera_focus import lens_focus
from rig.devices.camera_process import CameraProcess
from rig.devices.protocols import Camera
from rig.errors import CameraError

REPO = Path(__file__).resolve().parents[1]
MODEL = "Nikon DSC D750"


def _vusb() -> Path:
    spec = importlib.util.find_spec("gphoto2")  # found without importing it here
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent")
    return Path(next(iter(spec.submodule_search_locations))) / "libgphoto2" / "vusb"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JPEG the virtual camera serves; a missing virtual camera is a broken install."""
    if not _vusb().is_dir():
        pytest.fail(
            "python-gphoto2 without libgphoto2's virtual camera (vusb): install the binary "
            "wheel from PyPI (pip install --only-binary :all: gphoto2)"
        )
    img = np.zeros((96, 128, 3), np.uint8)
    cv2.rectangle(img, (20, 20), (100, 70), (30, 200, 90), -1)
    ok, data = cv2.imencode(".jpg", img)
    assert ok
    path = tmp_path_factory.mktemp("vcamera") / "scene.jpg"
    path.write_bytes(data.tobytes())
    return path


def vcamera_env(served: Path, tmp_path: Path) -> dict[str, str]:
    # XDG_CONFIG_HOME: libgphoto2 keeps capturetarget in a settings file, not the user's one.
    return {"VCAMERADIR": str(served.parent), "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.fixture
def camera(served: Path, tmp_path: Path) -> Iterator[CameraProcess]:
    cam = CameraProcess(env=vcamera_env(served, tmp_path), call_timeout_s=10, capture_timeout_s=5)
    yield cam
    cam.close()


def reaped(pid: int) -> bool:
    """True once ``pid`` is no child of ours any more (ended and waited for)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_connect_and_summary(camera: CameraProcess) -> None:
    assert "VCAMERADIR" not in os.environ  # only the child has it
    start = time.perf_counter()
    assert camera.connect() == f"{MODEL} on usb:001,001"
    assert time.perf_counter() - start < 5
    assert camera.info is not None and camera.info.model == MODEL
    summary = camera.summary()
    assert (summary.model, summary.battery) == (MODEL, "50%")
    assert "capturetarget" in camera.config_keys()
    aperture = camera.get("aperture")  # the alias is resolved in the child, as in-process
    assert aperture.name == "f-number" and "f/8" in aperture.choices
    camera.set("aperture", "8")
    assert camera.get("f-number").value == "f/8"
    assert isinstance(camera, Camera)


def test_errors_in_the_child_are_camera_errors_with_their_message(
    camera: CameraProcess,
) -> None:
    camera.connect()
    with pytest.raises(CameraError, match="did you mean f-number"):
        camera.get("fnumbr")
    with pytest.raises(CameraError, match=r"f/99.*offers f/2\.8"):
        camera.set("f-number", "f/99")
    with pytest.raises(CameraError, match=f"^live view is not supported by {MODEL}"):
        camera.preview()
    assert camera.summary().model == MODEL  # the same child carries on


def test_a_capture_lands_in_the_folder_complete(
    camera: CameraProcess, served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camera.connect()
    monkeypatch.chdir(tmp_path)
    [path] = camera.capture(Path("frames"))  # relative to this process, not the child
    assert path == tmp_path / "frames" / path.name and path.suffix == ".JPG"
    assert path.read_bytes() == served.read_bytes()
    assert [p.name for p in (tmp_path / "frames").iterdir()] == [path.name]  # no temp left
    assert camera.captures == 1


def test_without_restart_the_virtual_camera_fills_up(camera: CameraProcess, tmp_path: Path) -> None:
    camera.connect()
    shots = 0
    with pytest.raises(CameraError) as full:
        while shots < 40:
            # Kept on the camera: deleting costs the virtual camera 0.3 s and frees no shots.
            camera.capture(tmp_path / "frames", delete_after=False)
            shots += 1
    assert 20 <= shots <= 30
    assert "full" in str(full.value) and MODEL in str(full.value)
    assert camera.captures == shots + 1  # the refused one was answered too


def test_restarting_every_24_captures_lifts_the_limit(
    camera: CameraProcess, served: Path, tmp_path: Path
) -> None:
    camera.connect()
    pids, saved = {camera.pid}, []
    for _ in range(40):
        if camera.captures == 24:
            assert camera.restart() == f"{MODEL} on usb:001,001"
            pids.add(camera.pid)
            assert camera.captures == 0
        saved += camera.capture(tmp_path / "frames", delete_after=False)
    assert len(saved) == 40 and len(set(saved)) == 40  # names repeat per child: made unique
    assert len(pids) == 2
    assert all(p.read_bytes() == served.read_bytes() for p in saved)


def test_a_hung_capture_is_killed_at_its_deadline_and_the_retry_works(
    served: Path, tmp_path: Path
) -> None:
    with CameraProcess(
        env=vcamera_env(served, tmp_path), call_timeout_s=1.0, capture_timeout_s=1.0
    ) as camera:
        camera.connect()
        hung = camera.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)  # it stops answering, as a stuck libgphoto2 call does
        start = time.monotonic()
        with pytest.raises(CameraError, match=r"did not finish capturing within 2 s") as err:
            camera.capture(tmp_path / "frames")
        assert 2.0 <= time.monotonic() - start < 4.0
        said = str(err.value)
        assert "killed" in said and "fresh one starts with the next call" in said
        assert camera.pid is None and reaped(hung)
        [path] = camera.capture(tmp_path / "frames")  # the session's retry of the shot
        assert path.read_bytes() == served.read_bytes()
        assert camera.pid not in (None, hung) and camera.info is not None


def test_a_child_killed_from_outside_is_reported_then_replaced(
    camera: CameraProcess, tmp_path: Path
) -> None:
    camera.connect()
    camera.capture(tmp_path / "frames")
    dead = camera.pid
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    with pytest.raises(CameraError, match="camera process was killed by signal 9 while capturing"):
        camera.capture(tmp_path / "frames")
    assert reaped(dead)
    assert len(camera.capture(tmp_path / "frames")) == 1
    assert camera.captures == 1  # counted per child


def test_a_child_that_cannot_start_says_why(caplog: pytest.LogCaptureFixture) -> None:
    camera = CameraProcess(env={"PYTHONHOME": "/nonexistent"})  # no standard library there
    # It may die before or after the first request reaches it: either is said.
    said = r"exited with status 1 while (starting the camera process|connecting).*encodings"
    with pytest.raises(CameraError, match=said):
        camera.connect()
    assert "Fatal Python error" in caplog.text  # its whole stderr, in this process's log
    assert camera.pid is None
    camera.close()


def test_ctrl_c_during_a_call_leaves_no_child_out_of_step(camera: CameraProcess) -> None:
    camera.connect()
    stuck = camera.pid
    assert stuck is not None
    os.kill(stuck, signal.SIGSTOP)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            camera.summary()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert camera.pid is None and reaped(stuck)
    assert camera.summary().model == MODEL


def test_the_childs_log_reaches_this_process(
    camera: CameraProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stackrig")
    camera.connect()
    with pytest.raises(CameraError):
        camera.preview()
    connected = [r for r in caplog.records if r.getMessage().startswith(f"connected to {MODEL}")]
    assert connected and connected[0].name == "stackrig.camera"
    assert connected[0].processName == "camera process"
    said = [r for r in caplog.records if r.name == "gphoto2" and r.levelno >= logging.WARNING]
    assert any("capture_preview" in r.getMessage() for r in said)  # libgphoto2's own words


def test_close_reaps_the_child_and_later_calls_ask_to_connect(camera: CameraProcess) -> None:
    camera.connect()
    pid = camera.pid
    assert pid is not None
    camera.close()
    assert camera.pid is None and camera.info is None and reaped(pid)
    with pytest.raises(CameraError, match="not connected: connect first"):
        camera.summary()
    camera.close()  # twice is harmless


def test_lens_focus_runs_through_the_camera_process(camera: CameraProcess) -> None:
    camera.connect()
    with pytest.raises(CameraError, match=f"^{MODEL} offers no lens focus control"):
        lens_focus(camera).connect()


def test_a_parent_without_gphoto2(served: Path, tmp_path: Path) -> None:
    """A plain interpreter as the parent (as the stackrig console script is): it never
    imports gphoto2, and its own environment has no VCAMERADIR."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from rig.devices.camera_process import CameraProcess
        with CameraProcess(env={vcamera_env(served, tmp_path)!r}) as camera:
            text = camera.connect()
            files = camera.capture(Path({str(tmp_path / "frames")!r}))
            summary = camera.summary()
        print(json.dumps({{"connected": text, "files": [str(f) for f in files],
                          "model": summary.model, "gphoto2": "gphoto2" in sys.modules}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "VCAMERADIR"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["connected"] == f"{MODEL} on usb:001,001" and out["model"] == MODEL
    assert Path(out["files"][0]).read_bytes() == served.read_bytes()
    assert out["gphoto2"] is False
