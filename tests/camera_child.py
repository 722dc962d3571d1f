"""Run one virtual-camera scenario in a fresh process and print its findings as JSON.

Usage: VCAMERADIR=<folder with a JPEG> python camera_child.py SCENARIO TMPDIR

A fresh process per scenario because libgphoto2's virtual camera reads VCAMERADIR when gphoto2
is imported and allows only about 26 captures per process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "VCAMERADIR" not in os.environ:
    sys.exit("set VCAMERADIR before running this script")

from rig.devices.camera_worker import CameraWorker
from rig.devices.gphoto import GPhotoCamera, list_cameras
from rig.errors import CameraError


def _error(fn: Callable[[], object]) -> str | None:
    try:
        fn()
    except CameraError as exc:
        return str(exc)
    return None


def detect(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    summary = camera.summary()
    return {
        "cameras": [[c.model, c.port] for c in list_cameras()],
        "summary": summary.__dict__,
        "keys": camera.config_keys(),
        "vibration": camera.vibration_controls(),
    }


def config(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    before = camera.get("aperture")  # an alias: the D750 calls it f-number
    target = before.choices[-2]
    camera.set("aperture", target)
    after = camera.get("f-number")
    camera.set("exposurecompensation", "-1")
    return {
        "before": before.__dict__,
        "target": target,
        "after": after.__dict__,
        "bias": camera.get("exposurecompensation").value,
        "unknown_error": _error(lambda: camera.get("fnumbr")),
        "bad_value_error": _error(lambda: camera.set("f-number", "f/99")),
        "readonly_error": _error(lambda: camera.set("imagesize", "1024x768")),
    }


def capture(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: Any) -> None:  # records what was made durable (Linux: /proc names the fd)
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    os.fsync = fsync
    times, paths = [], []
    for _ in range(3):
        start = time.perf_counter()
        paths += camera.capture(tmp / "frames", delete_after=True)
        times.append(time.perf_counter() - start)
    os.fsync = real_fsync
    return {"paths": [str(p) for p in paths], "seconds": times, "synced": synced}


def store_full(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    shots = 0
    errors: list[str] = []
    while len(errors) < 2 and shots < 60:  # the first failure and the one after it
        try:
            camera.capture(tmp / "frames", delete_after=False)  # deleting frees no shots
            shots += 1
        except CameraError as exc:
            errors.append(str(exc))
    return {"shots": shots, "errors": errors}


def preview(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    return {"error": _error(camera.preview)}


def worker(_: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    """The same capture, but through the worker thread that owns the camera."""
    pool = CameraWorker(GPhotoCamera)
    connected = pool.start()
    paths = pool.call(GPhotoCamera.capture, tmp / "frames", timeout_s=20, what="capture")
    model = pool.call(lambda cam: cam.summary().model, timeout_s=10)
    pool.close()
    return {"connected": connected, "paths": [str(p) for p in paths], "model": model}


def lens(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    from rig.devices.camera_focus import lens_focus

    return {"error": _error(lambda: lens_focus(camera).connect())}


def feed(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    """Each capture returns the frame the simulated rig put in the served file just before."""
    import cv2
    import numpy as np

    from rig.simrig.camera_feed import CameraFeed

    served = CameraFeed.existing(Path(os.environ["VCAMERADIR"]))
    fed, got = [], []
    for i, colour in enumerate([(250, 30, 30), (30, 250, 30), (30, 30, 250)]):
        frame = np.zeros((240, 320, 3), np.uint8)
        frame[:] = colour
        cv2.putText(frame, str(i), (120, 160), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
        served.show(frame)
        (path,) = camera.capture(tmp / "frames", delete_after=True)
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        fed.append(frame.reshape(-1, 3).mean(0).tolist())
        got.append(image.reshape(-1, 3).mean(0).tolist())
    return {"fed": fed, "got": got}


def targets(camera: GPhotoCamera, tmp: Path) -> dict[str, Any]:
    """What the camera says a shot makes, and where the automatic delete leaves each file."""
    from rig.devices.gphoto import FORMAT_KEYS

    def on_camera(path: Path) -> bool:
        return path.name in camera_files(camera)

    out: dict[str, Any] = {
        "format_keys": [k for k in camera.config_keys() if k in FORMAT_KEYS],
        "files_per_shot": camera.files_per_shot,
        "target": camera.capture_target,
        "choices": list(camera.get("capturetarget").choices),
    }
    seconds, saved = [], []

    def shoot(delete_after: bool | None) -> bool:
        start = time.perf_counter()
        (path,) = camera.capture(tmp / "frames", delete_after=delete_after)
        seconds.append(time.perf_counter() - start)
        saved.append(path.name)
        return on_camera(path)

    out["ram_auto_on_camera"] = shoot(None)
    out["ram_forced_keep_on_camera"] = shoot(False)
    camera.set("capturetarget", "Memory card")
    out["target_after_set"] = camera.capture_target
    out["card_auto_on_camera"] = shoot(None)
    out["card_forced_delete_on_camera"] = shoot(True)
    return out | {"seconds": seconds, "saved": saved}


def camera_files(camera: GPhotoCamera, folder: str = "/") -> list[str]:
    """Every file name on the camera's storage (through the open libgphoto2 handle)."""
    handle = camera._camera  # the test looks behind the class: it offers no file listing
    files = handle.folder_list_files(folder)
    names = [files.get_name(i) for i in range(files.count())]
    folders = handle.folder_list_folders(folder)
    for i in range(folders.count()):
        names += camera_files(camera, f"{folder.rstrip('/')}/{folders.get_name(i)}")
    return names


SCENARIOS = {
    f.__name__: f
    for f in (detect, config, capture, store_full, preview, worker, lens, feed, targets)
}


def main() -> None:
    scenario, tmp = SCENARIOS[sys.argv[1]], Path(sys.argv[2])
    camera = GPhotoCamera()
    if scenario is not worker:
        camera.connect()
    try:
        result = scenario(camera, tmp)
    finally:
        camera.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
