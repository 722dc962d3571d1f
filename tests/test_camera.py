"""Camera control: libgphoto2's own virtual camera (in subprocesses) and fault paths (fakes).

The virtual camera (an emulated Nikon DSC D750 behind the real PTP driver) needs VCAMERADIR set
before gphoto2 is imported and serves about 26 captures per process, so every scenario runs
tests/camera_child.py in a fresh interpreter. Faults it cannot produce come from a thin fake at
the python-gphoto2 boundary that raises real gphoto2.GPhoto2Error codes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import gphoto2 as gp
import numpy as np
import pytest

from rig.devices.camera_worker import CameraWorker
from rig.devices.gphoto import (
    CameraInfo,
    GPhotoCamera,
    camera_error,
    choose,
    format_file_count,
    safe_filename,
    target_is_ram,
)
from rig.devices.protocols import Camera
from rig.errors import CameraError

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("camera_child.py")
INFO = CameraInfo("Canon EOS 80D", "usb:002,007")
VUSB = Path(gp.__file__).parent / "libgphoto2" / "vusb"
LIB_VERSION = tuple(int(x) for x in gp.gp_library_version(gp.GP_VERSION_SHORT)[0].split(".")[:3])


@pytest.fixture
def _vcamera_available() -> None:
    """These tests need the virtual camera: a missing one is a broken install, not a skip."""
    if not VUSB.is_dir() or LIB_VERSION <= (2, 5, 30):
        pytest.fail(
            "python-gphoto2 without libgphoto2's virtual camera (vusb, libgphoto2 > 2.5.30): "
            "install the binary wheel from PyPI (pip install --only-binary :all: gphoto2)"
        )


needs_vcamera = pytest.mark.usefixtures("_vcamera_available")


# -- the virtual camera, one process per scenario --------------------------------------------


@pytest.fixture(scope="module")
def served_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the one JPEG the virtual camera serves for every capture."""
    folder = tmp_path_factory.mktemp("vcamera")
    img = np.zeros((120, 160, 3), np.uint8)
    cv2.circle(img, (80, 60), 35, (40, 180, 250), -1)
    cv2.putText(img, "stackrig", (20, 110), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    ok, data = cv2.imencode(".jpg", img)
    assert ok
    path = folder / "scene.jpg"
    path.write_bytes(data.tobytes())
    return path


def run_child(scenario: str, served: Path, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("IOLIBS", "CAMLIBS")}
    env.update(VCAMERADIR=str(served.parent), PYTHONPATH=str(REPO))
    # libgphoto2 keeps capturetarget in $XDG_CONFIG_HOME/gphoto/settings: not the user's.
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run(
        [sys.executable, str(CHILD), scenario, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@needs_vcamera
def test_detects_the_virtual_camera_and_summarises_it(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("detect", served_jpeg, tmp_path)
    assert out["cameras"] == [["Nikon DSC D750", "usb:001,001"]]
    summary = out["summary"]
    assert summary["model"] == "Nikon DSC D750"
    assert summary["battery"] == "50%"
    assert summary["lens"] is None  # the virtual camera reports none
    assert 0 < summary["storage_free_bytes"] <= summary["storage_total_bytes"]
    assert {"f-number", "exposurecompensation", "imagesize", "capturetarget"} <= set(out["keys"])
    assert out["vibration"] == []


@needs_vcamera
def test_config_round_trip_with_choices_read_from_the_camera(
    served_jpeg: Path, tmp_path: Path
) -> None:
    out = run_child("config", served_jpeg, tmp_path)
    assert out["before"]["name"] == "f-number"  # "aperture" resolved to the Nikon name
    assert "f/8" in out["before"]["choices"] and out["before"]["type"] == "radio"
    assert out["before"]["value"] != out["target"]
    assert out["after"]["value"] == out["target"]
    assert out["bias"] == "-1"
    assert "did you mean f-number" in out["unknown_error"]
    assert "f/99" in out["bad_value_error"] and "f/5.6, f/6.3" in out["bad_value_error"]
    assert "read-only" in out["readonly_error"]


@needs_vcamera
def test_capture_downloads_the_served_bytes_durably(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("capture", served_jpeg, tmp_path)
    paths = [Path(p) for p in out["paths"]]
    assert len(paths) == 3 and len(set(paths)) == 3
    for path in paths:
        assert path.parent == tmp_path / "frames"
        assert re.fullmatch(r"GPH_\d{4}\.JPG", path.name)
        assert path.read_bytes() == served_jpeg.read_bytes()
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == sorted(p.name for p in paths)
    synced = out["synced"]
    assert sum(s.endswith(".tmp") for s in synced) == 3  # each file before its rename
    assert synced.count(str(tmp_path / "frames")) == 3  # the folder after each rename
    assert max(out["seconds"]) < 5


@needs_vcamera
def test_store_full_becomes_a_clear_error(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("store_full", served_jpeg, tmp_path)
    assert 20 <= out["shots"] <= 40
    first, then = out["errors"]
    assert "full" in first and "Nikon DSC D750" in first
    assert "full" in then  # the next trigger fails with a bare -1; it is still the full store


@needs_vcamera
def test_preview_is_reported_as_unsupported(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("preview", served_jpeg, tmp_path)
    assert out["error"].startswith("live view is not supported by Nikon DSC D750")


@needs_vcamera
def test_the_worker_thread_owns_a_real_camera(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("worker", served_jpeg, tmp_path)
    assert out["connected"] == "Nikon DSC D750 on usb:001,001"
    assert out["model"] == "Nikon DSC D750"
    assert Path(out["paths"][0]).read_bytes() == served_jpeg.read_bytes()


# -- fault paths through a fake at the python-gphoto2 boundary -------------------------------


class FakeGp:
    """What GPhotoCamera uses of a gp.Camera; ``trigger_errors`` are raised first, in order."""

    def __init__(self, *trigger_errors: int, names: tuple[str, ...] = ("IMG_0001.JPG",)) -> None:
        self.trigger_errors = list(trigger_errors)
        self.names = names
        self.complete = True
        self.events: list[tuple[int, object]] = []
        self.triggers = 0
        self.deleted: list[str] = []
        self.closed = False
        self.config = FakeWidget("main", gp.GP_WIDGET_WINDOW)
        self.sent: list[FakeWidget] = []
        self.can_delete = True

    def trigger_capture(self) -> None:
        self.triggers += 1
        if self.trigger_errors:
            raise gp.GPhoto2Error(self.trigger_errors.pop(0))
        for name in self.names:
            self.events.append((gp.GP_EVENT_FILE_ADDED, SimpleNamespace(folder="/dc", name=name)))
        if self.complete:
            self.events.append((gp.GP_EVENT_CAPTURE_COMPLETE, None))

    def wait_for_event(self, timeout_ms: int) -> tuple[int, object]:
        return self.events.pop(0) if self.events else (gp.GP_EVENT_TIMEOUT, None)

    def file_get(self, folder: str, name: str, kind: int) -> SimpleNamespace:
        return SimpleNamespace(get_data_and_size=lambda: f"data of {name}".encode())

    def file_delete(self, folder: str, name: str) -> None:
        if not self.can_delete:
            raise gp.GPhoto2Error(gp.GP_ERROR_NOT_SUPPORTED)
        self.deleted.append(name)

    def exit(self) -> None:
        self.closed = True

    def get_config(self) -> FakeWidget:
        return self.config

    def set_config(self, root: FakeWidget) -> None:
        self.sent.append(root)


def fake_camera(*handles: FakeGp | int, **options: Any) -> GPhotoCamera:
    """A GPhotoCamera whose opener hands out ``handles`` in turn (an int: raise that code)."""
    queue = list(handles)

    def opener(info: CameraInfo) -> FakeGp:
        handle = queue.pop(0)
        if isinstance(handle, int):
            raise gp.GPhoto2Error(handle)
        return handle

    options.setdefault("busy_delays_s", (0.01, 0.02, 0.04))
    return GPhotoCamera(detect=lambda: [INFO], opener=opener, **options)


def test_gphoto_camera_is_a_camera() -> None:
    assert isinstance(fake_camera(), Camera)


def test_claimed_by_the_desktop_says_how_to_free_it() -> None:
    camera = fake_camera(gp.GP_ERROR_IO_USB_CLAIM)
    with pytest.raises(CameraError, match="gio mount -s gphoto2") as err:
        camera.connect()
    assert "gvfs" in str(err.value) and "replug" in str(err.value)


def test_busy_is_retried_then_the_shot_succeeds(tmp_path: Path) -> None:
    handle = FakeGp(gp.GP_ERROR_CAMERA_BUSY, gp.GP_ERROR_CAMERA_BUSY)
    camera = fake_camera(handle)
    camera.connect()
    assert [p.name for p in camera.capture(tmp_path, delete_after=True)] == ["IMG_0001.JPG"]
    assert handle.triggers == 3 and handle.deleted == ["IMG_0001.JPG"]
    assert (tmp_path / "IMG_0001.JPG").read_bytes() == b"data of IMG_0001.JPG"


def test_busy_forever_gives_up_with_advice(tmp_path: Path) -> None:
    handle = FakeGp(*[gp.GP_ERROR_CAMERA_BUSY] * 10)
    camera = fake_camera(handle)
    camera.connect()
    with pytest.raises(CameraError, match="stayed busy while triggering a capture"):
        camera.capture(tmp_path)
    assert handle.triggers == 4  # three retries with growing pauses, then the error


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (gp.GP_ERROR_IO_USB_FIND, r"is gone .* reconnect"),
        (gp.GP_ERROR_IO, r"is gone .* reconnect"),
        (gp.GP_ERROR_TIMEOUT, r"did not answer in time .* retry"),
    ],
)
def test_lost_camera_is_reconnected_on_the_next_call(tmp_path: Path, code: int, says: str) -> None:
    first, second = FakeGp(code), FakeGp()
    camera = fake_camera(first, second)
    camera.connect()
    with pytest.raises(CameraError, match=says):
        camera.capture(tmp_path)
    assert first.closed
    assert [p.name for p in camera.capture(tmp_path)] == ["IMG_0001.JPG"]
    assert second.triggers == 1


def test_raw_and_jpeg_without_capture_complete_stop_when_quiet(tmp_path: Path) -> None:
    handle = FakeGp(names=("IMG_0002.CR2", "IMG_0002.JPG"))
    handle.complete = False  # Canon with a card target
    camera = fake_camera(handle, quiet_s=0.2)
    camera.connect()
    start = time.monotonic()
    saved = camera.capture(tmp_path)
    assert [p.name for p in saved] == ["IMG_0002.CR2", "IMG_0002.JPG"]
    assert time.monotonic() - start < 1.0


def test_camera_file_names_cannot_escape_or_overwrite(tmp_path: Path) -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert safe_filename("IMG\x00_1\x1b[2J.JPG") == "IMG__1__2J.JPG"
    assert safe_filename("..") == "capture"
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "passwd").write_bytes(b"keep me")
    camera = fake_camera(FakeGp(names=("../../etc/passwd",)))
    camera.connect()
    [saved] = camera.capture(folder)
    assert saved == folder / "passwd-1"
    assert (folder / "passwd").read_bytes() == b"keep me"
    assert not list(folder.glob(".*.part"))


def test_error_translation_names_the_fix() -> None:
    def text(code: int) -> str:
        return str(camera_error(gp.GPhoto2Error(code), "capturing", "Nikon Z6"))

    assert "did not answer in time" in text(gp.GP_ERROR_TIMEOUT)
    assert "card is full" in text(gp.GP_ERROR_NO_SPACE)
    assert "is gone" in text(gp.GP_ERROR_IO) and "reconnect" in text(gp.GP_ERROR_MODEL_NOT_FOUND)
    assert "[-1]" in text(gp.GP_ERROR)


class FakeWidget:
    """A leaf (or, with children, a window) of a libgphoto2 configuration tree."""

    def __init__(self, name: str, kind: int, value: object = None, *children: FakeWidget) -> None:
        self.name, self.kind, self.value, self.children = name, kind, value, children
        self.choices: tuple[str, ...] = ()

    @classmethod
    def radio(cls, name: str, value: str, *choices: str) -> FakeWidget:
        widget = cls(name, gp.GP_WIDGET_RADIO, value)
        widget.choices = choices or (value,)
        return widget

    def get_type(self) -> int:
        return self.kind

    def get_name(self) -> str:
        return self.name

    def get_label(self) -> str:
        return self.name.title()

    def get_value(self) -> object:
        return self.value

    def set_value(self, value: object) -> None:
        self.value = value

    def get_readonly(self) -> int:
        return 0

    def get_range(self) -> tuple[float, float, float]:
        return (-32767.0, 32767.0, 1.0)

    def count_children(self) -> int:
        return len(self.children)

    def get_child(self, i: int) -> FakeWidget:
        return self.children[i]

    def count_choices(self) -> int:
        return len(self.choices)

    def get_choice(self, i: int) -> str:
        return self.choices[i]


def configured(*leaves: FakeWidget, **options: Any) -> FakeGp:
    handle = FakeGp(**options)
    handle.config = FakeWidget("main", gp.GP_WIDGET_WINDOW, None, *leaves)
    return handle


def test_range_and_toggle_settings_are_checked_and_converted() -> None:
    drive = FakeWidget("manualfocusdrive", gp.GP_WIDGET_RANGE, 0.0)
    lock = FakeWidget("mirrorlock", gp.GP_WIDGET_TOGGLE, 0)
    handle = FakeGp()
    handle.config = FakeWidget("main", gp.GP_WIDGET_WINDOW, None, drive, lock)
    camera = fake_camera(handle)
    camera.connect()
    assert camera.get("manualfocusdrive").range == (-32767.0, 32767.0, 1.0)
    camera.set("manualfocusdrive", "-200")
    camera.set("mirrorlock", "on")
    assert (drive.value, lock.value, len(handle.sent)) == (-200.0, 1, 2)
    assert camera.vibration_controls() == ["mirrorlock"]
    with pytest.raises(CameraError, match=r"takes -32767\.0 to 32767\.0"):
        camera.set("manualfocusdrive", 40000)


def test_choosing_among_several_cameras() -> None:
    two = [INFO, CameraInfo("Nikon Z6", "usb:001,004")]
    assert choose(two, "Nikon Z6", None).port == "usb:001,004"
    with pytest.raises(CameraError, match=r"2 cameras match .*choose one"):
        choose(two, None, None)
    with pytest.raises(CameraError, match="no camera matches Sony"):
        choose(two, "Sony", None)
    with pytest.raises(CameraError, match="no camera found"):
        choose([], None, None)


# -- the worker thread ------------------------------------------------------------------------


class Thing:
    def __init__(self) -> None:
        self.connects = 0

    def connect(self) -> str:
        self.connects += 1
        return "thing"

    def close(self) -> None:
        pass


def test_worker_runs_calls_on_its_own_thread_and_reraises() -> None:
    worker = CameraWorker(Thing)
    assert worker.start() == "thing"
    name = worker.call(lambda cam, x: (threading.current_thread().name, x), 7, timeout_s=2)
    assert name == ("camera", 7)

    def fail(cam: Thing) -> None:
        raise CameraError("no card")

    with pytest.raises(CameraError, match="no card"):
        worker.call(fail, timeout_s=2)
    worker.close()


def test_worker_watchdog_turns_a_hang_into_an_error_and_restart_recovers() -> None:
    release = threading.Event()
    made: list[Thing] = []

    def make() -> Thing:
        made.append(Thing())
        return made[-1]

    worker = CameraWorker(make)
    worker.start()
    start = time.monotonic()
    with pytest.raises(CameraError, match=r"did not respond to capture within 0.2 s"):
        worker.call(lambda cam: release.wait(), timeout_s=0.2, what="capture")
    assert time.monotonic() - start < 1.0  # the caller is not frozen
    assert worker.faulted
    with pytest.raises(CameraError, match="stopped responding"):
        worker.call(lambda cam: 1, timeout_s=1)
    assert worker.restart() == "thing"
    assert worker.call(lambda cam: cam is made[1], timeout_s=2)
    release.set()  # let the abandoned thread end
    worker.close()


@needs_vcamera
def test_lens_focus_on_a_camera_without_focus_control(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("lens", served_jpeg, tmp_path)
    assert out["error"].startswith("Nikon DSC D750 offers no lens focus control through libgphoto2")


@needs_vcamera
def test_the_simulated_rig_feeds_each_capture_its_own_frame(tmp_path: Path) -> None:
    from rig.simrig.camera_feed import CameraFeed

    first = np.full((240, 320, 3), 128, np.uint8)
    feed = CameraFeed.for_frames(tmp_path / "served", first)  # before the camera opens
    result = run_child("feed", feed.path, tmp_path)
    for fed, got in zip(result["fed"], result["got"], strict=True):
        assert np.allclose(fed, got, atol=6.0), (fed, got)  # JPEG twice: a few levels off


# -- files per shot from the image format, delete after download by capture target -----------

# Values as libgphoto2's camlibs/ptp2/config.c names them, per vendor and version.
FORMATS = [
    ("RAW + Large Fine JPEG", 2),  # Canon EOS, libgphoto2 <= 2.5.31
    ("cRAW + Large Fine JPEG", 2),
    ("mRAW + Small Normal JPEG", 2),
    ("RAW + Tiny JPEG", 2),
    ("Large + RAW", 2),
    ("Medium 1 + cRAW", 2),
    ("Large Fine JPEG", 1),
    ("Smaller JPEG", 1),
    ("RAW", 1),
    ("mRAW", 1),
    ("RAW + L", 2),  # Canon EOS, libgphoto2 >= 2.5.32 builds "first + second" from codes
    ("cRAW + cL", 2),
    ("mRAW + S1", 2),
    ("L", 1),
    ("cM2", 1),
    ("0x0c + 0x44", None),  # a code libgphoto2 has no name for
    ("NEF+Fine", 2),  # Nikon
    ("NEF+Basic*", 2),
    ("NEF (Raw)", 1),
    ("JPEG Fine", 1),
    ("JPEG Normal*", 1),
    ("TIFF (RGB)", 1),
    ("RAW+JPEG", 2),  # Sony
    ("RAW+JPEG (X.Fine)", 2),
    ("RAW+HEIF (Std)", 2),
    ("HEIF (Fine)", 1),
    ("Extra Fine", 1),
    ("Standard", 1),
    ("RAW + JPEG Fine", 2),  # Fuji
    ("JPEG Normal", 1),
    ("Large Fine JPEG+RAW", 2),  # Olympus
    ("Small Normal JPEG", 1),
    ("superfine", 1),  # Canon PowerShot quality
    ("1234", None),  # Panasonic reports bare numbers
    ("Undefined", None),
    ("", None),
]


@pytest.mark.parametrize(("value", "files"), FORMATS)
def test_files_per_shot_from_real_image_format_values(value: str, files: int | None) -> None:
    assert format_file_count(value) == files


@pytest.mark.parametrize(
    ("value", "ram"),
    [
        ("Internal RAM", True),
        ("sdram", True),  # Sony
        ("Memory card", False),
        ("card", False),
        ("card+sdram", False),  # Sony: on the card as well, so the camera keeps a copy
        ("", None),
    ],
)
def test_capture_targets(value: str, ram: bool | None) -> None:
    assert target_is_ram(value) is ram


def test_raw_plus_jpeg_known_from_the_format_returns_without_waiting(tmp_path: Path) -> None:
    handle = configured(
        FakeWidget.radio("imageformat", "RAW + L", "L", "RAW + L"),
        names=("IMG_0003.CR3", "IMG_0003.JPG"),
    )
    handle.complete = False  # no CAPTURE_COMPLETE: only the count can end the shot early
    camera = fake_camera(handle, quiet_s=5.0)
    camera.connect()
    assert camera.files_per_shot == 2
    start = time.monotonic()
    saved = camera.capture(tmp_path)
    assert [p.name for p in saved] == ["IMG_0003.CR3", "IMG_0003.JPG"]
    assert time.monotonic() - start < 1.0


def test_changing_the_format_changes_the_count(tmp_path: Path) -> None:
    handle = configured(FakeWidget.radio("imagequality", "JPEG Fine", "JPEG Fine", "NEF+Fine"))
    handle.complete = False
    camera = fake_camera(handle, quiet_s=5.0)
    camera.connect()
    assert camera.files_per_shot == 1
    start = time.monotonic()
    assert [p.name for p in camera.capture(tmp_path)] == ["IMG_0001.JPG"]
    assert time.monotonic() - start < 1.0  # one file is the whole shot: no quiet wait
    camera.set("imageformat", "nef+fine")  # the alias and the camera's spelling
    assert camera.files_per_shot == 2


def test_sony_pc_save_of_one_file_of_a_pair() -> None:
    handle = configured(
        FakeWidget.radio("imagequality", "RAW+JPEG (Fine)"),
        FakeWidget.radio("pcsaveimgformat", "JPEG Only", "RAW & JPEG", "JPEG Only", "RAW Only"),
    )
    camera = fake_camera(handle)
    camera.connect()
    assert camera.files_per_shot == 1
    camera.set("pcsaveimgformat", "RAW & JPEG")
    assert camera.files_per_shot == 2


def test_a_shot_short_of_the_count_is_taken_and_the_count_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle = configured(FakeWidget.radio("imageformat", "RAW + L"))  # but only a JPEG comes
    camera = fake_camera(handle, quiet_s=0.1, late_s=0.3)
    camera.connect()
    start = time.monotonic()
    assert [p.name for p in camera.capture(tmp_path)] == ["IMG_0001.JPG"]
    assert 0.3 <= time.monotonic() - start < 1.0  # waited for the RAW past CAPTURE_COMPLETE
    assert "makes 2 files a shot but 1 came" in caplog.text
    assert camera.files_per_shot is None  # from now on the camera's quiet decides
    start = time.monotonic()
    camera.capture(tmp_path)
    assert time.monotonic() - start < 0.3


def test_no_format_setting_falls_back_to_the_quiet_wait(tmp_path: Path) -> None:
    handle = FakeGp(names=("IMG_0004.CR2", "IMG_0004.JPG"))
    handle.complete = False
    camera = fake_camera(handle, quiet_s=0.3)
    camera.connect()
    assert camera.files_per_shot is None
    start = time.monotonic()
    assert len(camera.capture(tmp_path)) == 2
    assert time.monotonic() - start >= 0.3


@pytest.mark.parametrize(
    ("target", "delete_after", "deleted"),
    [
        ("Internal RAM", None, True),  # automatic: the RAM copy goes
        ("Memory card", None, False),  # automatic: the card keeps its copy
        (None, None, False),  # no target reported: never delete unasked
        ("Memory card", True, True),
        ("Internal RAM", False, False),
    ],
)
def test_delete_after_download_by_capture_target(
    tmp_path: Path, target: str | None, delete_after: bool | None, deleted: bool
) -> None:
    choices = ("Internal RAM", "Memory card")
    leaves = [FakeWidget.radio("capturetarget", target, *choices)] if target else []
    handle = configured(*leaves)
    camera = fake_camera(handle)
    camera.connect()
    assert camera.capture_target == target
    [saved] = camera.capture(tmp_path, delete_after=delete_after)
    assert saved.read_bytes() == b"data of IMG_0001.JPG"
    assert handle.deleted == (["IMG_0001.JPG"] if deleted else [])


def test_setting_the_capture_target_changes_the_automatic_choice(tmp_path: Path) -> None:
    target = FakeWidget.radio("capturetarget", "Memory card", "Internal RAM", "Memory card")
    handle = configured(target)
    camera = fake_camera(handle)
    camera.connect()
    assert not camera.deletes_by_default()
    camera.set("capturetarget", "Internal RAM")
    assert camera.deletes_by_default()
    camera.capture(tmp_path)
    assert handle.deleted == ["IMG_0001.JPG"]


def test_a_camera_that_cannot_delete_keeps_the_shot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle = configured(FakeWidget.radio("capturetarget", "Internal RAM"))
    handle.can_delete = False
    camera = fake_camera(handle)
    camera.connect()
    [saved] = camera.capture(tmp_path)
    assert saved.exists() and "cannot delete files" in caplog.text
    assert len(camera.capture(tmp_path)) == 1  # and it does not ask again


@needs_vcamera
def test_virtual_camera_format_and_target(served_jpeg: Path, tmp_path: Path) -> None:
    out = run_child("targets", served_jpeg, tmp_path)
    # The virtual D750 offers no image-format setting (its imagesize is read-only): the count
    # is unknown and a shot ends on the camera's CAPTURE_COMPLETE, not after a quiet wait.
    assert out["format_keys"] == [] and out["files_per_shot"] is None
    assert max(out["seconds"]) < 1.0
    assert out["target"] == "Internal RAM" and out["choices"] == ["Internal RAM", "Memory card"]
    assert out["ram_auto_on_camera"] is False  # automatic: deleted from the RAM
    assert out["ram_forced_keep_on_camera"] is True
    assert out["target_after_set"] == "Memory card"
    assert out["card_auto_on_camera"] is True  # automatic: kept on the card
    assert out["card_forced_delete_on_camera"] is False
    for name in out["saved"]:
        assert (tmp_path / "frames" / name).read_bytes() == served_jpeg.read_bytes()
