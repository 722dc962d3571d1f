"""``stackrig camera list|summary|config [KEY [VALUE]]|capture [-o DIR]``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rig.cli.common import add_command, add_simulate, nonempty, output_folder, path_arg, say

SIMULATED_SCENE = Path(__file__).parents[1] / "data" / "vcamera"
CALL_TIMEOUT_S = 30.0
CAPTURE_TIMEOUT_S = 90.0  # long exposures and slow downloads of large RAW files


def add_commands(commands: argparse._SubParsersAction) -> None:
    cam = add_command(
        commands, "camera", "list, inspect, configure and fire the camera (libgphoto2)"
    )
    actions = cam.add_subparsers(dest="camera_action", metavar="ACTION", required=True)
    texts = {
        "list": "cameras libgphoto2 can see",
        "summary": "model, lens, battery and storage",
        "config": "all settings; KEY: its value and choices; KEY VALUE: change it",
        "capture": "take one picture and download it (RAW+JPEG pairs too)",
    }
    for name, text in texts.items():
        p = actions.add_parser(name, help=text, description=text)
        if name == "config":
            p.add_argument("key", nargs="?", help="setting name")
            p.add_argument("value", nargs="?", help="new value")
        if name == "capture":
            p.add_argument("-o", "--output", type=path_arg, default=Path("."),
                           help="folder for captured files (default: here)")  # fmt: skip
            p.add_argument("--delete", action="store_true", default=None,
                           help="delete the files from the camera after download (default: "
                           "when it shoots into its RAM, not from a card)")  # fmt: skip
            p.add_argument("--keep", dest="delete", action="store_false",
                           help="keep the camera's copy even when it shoots into RAM")  # fmt: skip
        if name != "list":
            p.add_argument("--model", type=nonempty,
                           help="pick the camera whose model contains this text")  # fmt: skip
            p.add_argument("--port", type=nonempty,
                           help="pick the camera on this port (e.g. usb:001,004)")  # fmt: skip
        add_simulate(p, "libgphoto2's virtual camera (a Nikon D750 serving a test scene)")
        p.set_defaults(handler=run_camera)


def run_camera(args: argparse.Namespace) -> int:
    action = args.camera_action
    folder = output_folder(args.output) if action == "capture" else None  # before the camera
    if args.simulate:
        # libgphoto2 switches to its virtual USB camera when this is set before import.
        os.environ.setdefault("VCAMERADIR", str(SIMULATED_SCENE))
    from rig.devices import gphoto
    from rig.devices.camera_worker import CameraWorker

    if action == "list":
        found = gphoto.list_cameras()
        if not found:
            say(
                "no camera found: check it is on, in PC/PTP mode and connected, or try "
                "'stackrig camera list --simulate'"
            )
        for cam in found:
            say(f"{cam.model:32} {cam.port}")
        return 0
    # One thread owns the camera; a libgphoto2 call that hangs becomes an error, not a freeze.
    worker = CameraWorker(lambda: gphoto.GPhotoCamera(model=args.model, port=args.port))
    say(f"connected: {worker.start()}")
    try:
        if action == "summary":
            worker.call(_summary, timeout_s=CALL_TIMEOUT_S, what="reading the summary")
        elif action == "config":
            worker.call(_config, args.key, args.value, timeout_s=CALL_TIMEOUT_S,
                        what="reading or writing settings")  # fmt: skip
        else:
            start = time.perf_counter()
            files = worker.call(_capture, folder, args.delete,
                                timeout_s=CAPTURE_TIMEOUT_S, what="capturing")  # fmt: skip
            took = time.perf_counter() - start
            for path in files:
                say(f"saved {path} ({path.stat().st_size} bytes)")
            say(f"capture + download took {took:.2f} s")
    finally:
        worker.close()
    return 0


def _capture(camera: object, folder: Path, delete: bool | None) -> list[Path]:
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
            say(f"{name:8} {value}")


def _config(camera: object, key: str | None, value: str | None) -> None:
    from rig.devices.gphoto import GPhotoCamera

    assert isinstance(camera, GPhotoCamera)
    if key is None:
        for name in camera.config_keys():
            say(name)
        return
    if value is not None:
        camera.set(key, value)
    setting = camera.get(key)
    lock = " (read-only)" if setting.readonly else ""
    say(f"{setting.name} = {setting.value}{lock}")
    if setting.choices:
        say("choices: " + ", ".join(str(c) for c in setting.choices))
