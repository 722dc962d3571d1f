"""Import hygiene: each module is imported alone in a fresh interpreter and sys.modules read.

The stacking engine stays pure (no rig, no UI, no hardware libraries), and everything that
runs before frames exist (the command's start-up, profiles, paths, errors, the rail drivers,
the session's file safety and reports) loads no OpenCV and no Textual: start-up stays fast,
and the process is tuned before OpenCV first loads.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("cv2", "textual", "tifffile", "PIL", "rawpy")


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return {name.split(".")[0] for name in json.loads(run.stdout)}


@pytest.mark.parametrize(
    "module",
    [
        "stacking.engine",
        "stacking.depthmap",
        "stacking.io",
        "stacking.align",
        "stacking.accumulate",
        "stacking.files",
        "stacking.report",
        "stacking.settings",
    ],
)
def test_stacking_imports_no_rig_ui_or_hardware(module: str) -> None:
    assert loaded_after_import(module) & {"rig", "textual", "gphoto2", "serial"} == set()


@pytest.mark.parametrize(
    "module",
    [
        "rig.cli",
        "rig.profiles",
        "rig.profiles.schema",
        "rig.paths",
        "rig.errors",
        "rig.outputs",
        "rig.devices.motion",
        "rig.devices.rails.registry",
        "rig.devices.rails.grbl",
        "rig.devices.rails.marlin",
        "rig.devices.rails.sangaboard",
        "rig.devices.rails.tic",
        "rig.devices.rails.ports",
        "rig.cli.plan",
        "rig.session.plan",
        "rig.session.optics",
        "stacking.files",
        "stacking.report",
        "stacking.settings",
    ],
)
def test_front_ends_profiles_and_drivers_load_no_opencv_or_textual(module: str) -> None:
    assert loaded_after_import(module) & set(HEAVY) == set()


def test_the_command_tunes_the_process_before_opencv_loads() -> None:
    # Record the OpenCV thread-pool setting at the moment cv2 is first imported.
    code = (
        "import builtins, os, sys\n"
        "real = builtins.__import__\n"
        "seen = []\n"
        "def spy(name, *a, **k):\n"
        "    if name == 'cv2' and 'cv2' not in sys.modules:\n"
        "        seen.append(os.environ.get('OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER'))\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        "from rig.cli import main\n"
        "main(['stack', 'tests/data/pcb', '-o', sys.argv[1], '-q'])\n"
        "print(seen)\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run(
            [sys.executable, "-c", code, f"{out}/r.jpg"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert run.stdout.strip().splitlines()[-1] == "['0']"
