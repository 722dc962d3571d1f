"""`stackrig camera list|summary|config [KEY [VALUE]]|capture [-o DIR]`."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ACTIONS = ("list", "summary", "config", "capture")
SIMULATED_SCENE = Path(__file__).parent / "data" / "vcamera"
CALL_TIMEOUT_S = 30.0
CAPTURE_TIMEOUT_S = 90.0  # long exposures and slow downloads of large RAW files


def add_commands(commands: argparse._SubParsersAction) -> None:
    cam = commands.add_parser(
        "camera",
        help="list, inspect, configure and fire the camera (libgphoto2)",
        description="Talk to the camera through libgphoto2: 'camera list', 'camera summary', "
        "'camera config' (all settings), 'camera config KEY' (value and choices), "
        "'camera config KEY VALUE', 'camera capture -o DIR'.",
    )
    cam.add_argument("action", choices=ACTIONS)
    cam.add_argument("key", nargs="?", help="setting name, for config")
    cam.add_argument("value", nargs="?", help="new value, for config")
    cam.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("."),
        help="folder for captured files (default: here)",
    )
    cam.add_argument("--model", help="pick the camera whose model contains this text")
    cam.add_argument("--port", help="pick the camera on this port (e.g. usb:001,004)")
    cam.add_argument(
        "--delete", action="store_true", help="delete the files from the camera after download"
    )
    cam.add_argument(
        "--simulate",
        action="store_true",
        help="use libgphoto2's virtual camera (a Nikon D750 serving a test scene)",
    )
    cam.set_defaults(handler=run_camera)


def run_camera(args: argparse.Namespace) -> int:
    if args.simulate:
        # libgphoto2 switches to its virtual USB camera when this is set before import.
        os.environ.setdefault("VCAMERADIR", str(SIMULATED_SCENE))
    from rig.devices import gphoto
    from rig.devices.camera_worker import CameraWorker

    if args.action == "list":
        found = gphoto.list_cameras()
        if not found:
            print(
                "no camera found: check it is on, in PC/PTP mode and connected, or try "
                "'stackrig camera list --simulate'"
            )
        for cam in found:
            print(f"{cam.model:32} {cam.port}")
        return 0
    # One thread owns the camera; a libgphoto2 call that hangs becomes an error, not a freeze.
    worker = CameraWorker(lambda: gphoto.GPhotoCamera(model=args.model, port=args.port))
    print(f"connected: {worker.start()}")
    try:
        if args.action == "summary":
            worker.call(_summary, timeout_s=CALL_TIMEOUT_S, what="reading the summary")
        elif args.action == "config":
            worker.call(_config, args.key, args.value, timeout_s=CALL_TIMEOUT_S,
                        what="reading or writing settings")  # fmt: skip
        else:
            args.output.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            files = worker.call(_capture, args.output, args.delete,
                                timeout_s=CAPTURE_TIMEOUT_S, what="capturing")  # fmt: skip
            took = time.perf_counter() - start
            for path in files:
                print(f"saved {path} ({path.stat().st_size} bytes)")
            print(f"capture + download took {took:.2f} s")
    finally:
        worker.close()
    return 0


def _capture(camera: object, folder: Path, delete: bool) -> list[Path]:
    from rig.devices.gphoto import GPhotoCamera

    assert isinstance(camera, GPhotoCamera)
    return camera.capture(folder, delete_after=delete)


def _summary(camera: object) -> None:
    from rig.devices.gphoto import GPhotoCamera

    assert isinstance(camera, GPhotoCamera)
    info = camera.summary()
    rows = [("model", info.model), ("port", info.port), ("lens", info.lens),
            ("battery", info.battery)]  # fmt: skip
    if info.storage_free_bytes is not None and info.storage_total_bytes:
        free, total = info.storage_free_bytes / 1e9, info.storage_total_bytes / 1e9
        rows.append(("storage", f"{free:.1f} GB free of {total:.1f} GB"))
    for name, value in rows:
        if value is not None:
            print(f"{name:8} {value}")


def _config(camera: object, key: str | None, value: str | None) -> None:
    from rig.devices.gphoto import GPhotoCamera

    assert isinstance(camera, GPhotoCamera)
    if key is None:
        for name in camera.config_keys():
            print(name)
        return
    if value is not None:
        camera.set(key, value)
    setting = camera.get(key)
    lock = " (read-only)" if setting.readonly else ""
    print(f"{setting.name} = {setting.value}{lock}")
    if setting.choices:
        print("choices: " + ", ".join(str(c) for c in setting.choices))
