"""The shipped udev rules: the project's own lint, then real udev reading them.

Real udev (``udevadm test``, in a mount namespace of its own: see udev_sandbox.py) runs on the
devices this machine has in /sys, and on sysfs trees laid out as real adapters and cameras
(sysfs_tree.py): it must read every file without a complaint, and set what the rules promise.
"""

from __future__ import annotations

import grp
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import sysfs_tree as fs
from udev_sandbox import UdevRun, udev_version, udevadm, udevadm_test

from rig.devices.rails.ports import KNOWN_IDS
from rig.doctor.udev import find_adapter, pin_file, pinned_rule, shipped_dir, shipped_rules

REPO = Path(__file__).resolve().parents[1]
CAMERA, RAIL = "70-stackrig-camera.rules", "70-stackrig-rail.rules"
SEAT_LATE = "73-seat-late.rules"  # systemd applies the uaccess tag here
_VALUE = r'"[^"\n]*"'
_TOKEN = rf"[A-Z_]+(\{{[^}}]*\}})?(==|!=|\+=|-=|:=|=){_VALUE}"
TOKENS = re.compile(rf"{_TOKEN}(, {_TOKEN})*")


# -- the project's own lint ---------------------------------------------------------------------


def rule_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip


def lint(name: str, text: str) -> list[str]:
    """What is wrong with one rules file, by the project's rules of thumb."""
    problems = []
    lines = rule_lines(text)
    labels = {m[1] for _, line in lines for m in re.finditer(r'LABEL="([^"]*)"', line)}
    for n, line in lines:
        at = f"{name}:{n}"
        if line.endswith("\\"):
            problems.append(f"{at}: a continued line (keep one rule per line)")
        if not TOKENS.fullmatch(line):
            problems.append(f"{at}: not KEY op \"value\" pairs separated by ', ': {line}")
        for mode in re.findall(r'MODE:?="([^"]*)"', line):
            if not re.fullmatch(r"0?[0-7][0-7]0", mode):
                problems.append(f"{at}: MODE={mode}: others must get no access (never 0666)")
        if "SYMLINK" in line and not ("GROUP=" in line and "MODE=" in line):
            problems.append(f"{at}: a SYMLINK rule without GROUP and MODE")
        if 'TAG+="uaccess"' in line and not name < SEAT_LATE:
            problems.append(f"{at}: uaccess set in a file that sorts after {SEAT_LATE}")
        for target in re.findall(r'GOTO="([^"]*)"', line):
            if target not in labels:
                problems.append(f"{at}: GOTO={target} has no LABEL")
    return problems


def test_rules_ship_with_the_package() -> None:
    assert shipped_dir() == REPO / "udev"  # a checkout; a wheel has them in rig/shipped_udev
    assert set(shipped_rules()) == {CAMERA, RAIL}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["udev"] == "rig/shipped_udev"


@pytest.mark.parametrize("name", [CAMERA, RAIL])
def test_shipped_rules_pass_the_lint(name: str) -> None:
    assert lint(name, shipped_rules()[name]) == []


def test_the_lint_catches_what_it_is_for() -> None:
    bad = "\n".join([
        'SUBSYSTEM=="usb", MODE="0666"',
        'SUBSYSTEM=="tty", SYMLINK+="rail"',
        'SUBSYSTEM=="usb", TAG+="uaccess"',
        'SUBSYSTEM=="tty" GROUP="dialout"',
        'SUBSYSTEM=="tty", GOTO="nowhere"',
    ])  # fmt: skip
    problems = "\n".join(lint("99-bad.rules", bad))
    for expected in ("0666", "without GROUP and MODE", "sorts after", "separated by", "no LABEL"):
        assert expected in problems


def test_rail_rules_cover_every_controller_stackrig_recognises() -> None:
    text = shipped_rules()[RAIL]
    for vid, pid in KNOWN_IDS:
        assert re.search(
            rf'ATTRS\{{idVendor\}}=="{vid:04x}", ATTRS\{{idProduct\}}=="[0-9a-f|]*{pid:04x}', text
        ), f"{vid:04x}:{pid:04x} ({KNOWN_IDS[vid, pid]}) is not in {RAIL}"


def test_camera_rules_use_uaccess_and_a_group() -> None:
    text = shipped_rules()[CAMERA]
    assert 'TAG+="uaccess", GROUP="plugdev", MODE="0660"' in text


# -- real udev ---------------------------------------------------------------------------------


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules.d"
    shutil.copytree(shipped_dir(), folder)
    return folder


def gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pytest.fail(f"the rules name group {group}, which this system lacks (Debian has it)")


def real_devices() -> list[str]:
    """Serial ports with hardware behind them, USB devices, and the pty master (always there)."""
    ttys = [str(p) for p in sorted(Path("/sys/class/tty").iterdir()) if (p / "device").exists()]
    usb = [str(p) for p in sorted(Path("/sys/bus/usb/devices").glob("*"))]
    return [*ttys, *usb, "/sys/class/tty/ptmx"]


def clean(run: UdevRun) -> UdevRun:
    assert set(run.read()) >= {CAMERA, RAIL}, run.output[-3000:]
    assert run.diagnostics() == [], run.output[-3000:]
    return run


def test_udev_reads_the_rules_without_a_complaint_on_real_devices(rules: Path) -> None:
    for device in real_devices():
        run = clean(udevadm_test(device, rules))
        if "/usb" not in run.properties.get("DEVPATH", ""):
            # not on USB (a mainboard port, the pty master): stackrig's rules leave it alone
            assert run.applied(RAIL) == [] and run.applied(CAMERA) == [], device


def test_a_broken_rule_is_reported(rules: Path) -> None:
    """So a clean run above means udev parsed every line, not that the harness saw nothing."""
    broken = rules / RAIL
    broken.write_text(broken.read_text() + 'SUBSYSTEM=="tty", BOGUS{x}=="1", MODE="0660"\n')
    run = udevadm_test("/sys/class/tty/ptmx", rules)
    assert any("Invalid key" in line for line in run.diagnostics()), run.output[-2000:]


def test_udevadm_verify_where_udev_has_it() -> None:
    """``udevadm verify`` came with systemd 253; older udev must say it has no such verb
    (then ``udevadm test`` above is the parse check)."""
    run = subprocess.run(
        [udevadm(), "verify", "--resolve-names=never", "--no-style", str(shipped_dir())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if udev_version() >= 253:
        assert run.returncode == 0, run.stdout + run.stderr
    else:
        assert run.returncode != 0 and "verify" in run.stderr, run.stdout + run.stderr


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    for adapter in (fs.FT232R, fs.CH340, fs.CP2102, fs.UNO, fs.TIC, fs.DUAL_FTDI):
        fs.add_adapter(root, adapter)
    fs.add_adapter(root, fs.OTHER_SERIAL)
    for camera in (fs.D750, fs.MOUSE):
        fs.add_camera(root, camera)
    return root


@pytest.mark.parametrize("adapter", [fs.FT232R, fs.CH340, fs.CP2102, fs.UNO, fs.TIC],
                         ids=lambda a: a.name)  # fmt: skip
def test_each_rail_adapter_gets_the_link_group_and_mode(
    adapter: fs.Adapter, rules: Path, tmp_path: Path
) -> None:
    run = clean(udevadm_test(f"/sys/class/tty/{adapter.tty}", rules, _tree(tmp_path)))
    assert run.applied(RAIL) == [f"GROUP {gid('dialout')}", "MODE 0660", "LINK 'stackrig-rail'"]
    assert "/dev/stackrig-rail" in run.properties["DEVLINKS"].split()
    assert run.properties["ID_MM_DEVICE_IGNORE"] == "1"  # ModemManager leaves it alone


def test_an_adapter_no_rail_uses_is_left_alone(rules: Path, tmp_path: Path) -> None:
    run = clean(udevadm_test(f"/sys/class/tty/{fs.OTHER_SERIAL.tty}", rules, _tree(tmp_path)))
    assert run.applied(RAIL) == []
    assert "ID_MM_DEVICE_IGNORE" not in run.properties


def test_a_camera_gets_uaccess_before_the_seat_rules_and_the_group(
    rules: Path, tmp_path: Path
) -> None:
    tree = _tree(tmp_path)
    run = clean(udevadm_test(f"/sys/bus/usb/devices/{fs.D750.port}", rules, tree))
    assert run.properties["ID_USB_INTERFACES"] == ":060101:"  # usb_id read the descriptors
    assert run.applied(CAMERA) == [f"GROUP {gid('plugdev')}", "MODE 0660"]
    assert "uaccess" in run.properties["TAGS"].split(":")
    assert re.search(rf"{SEAT_LATE}:\d+ RUN 'uaccess'", run.output)  # the tag came in time
    mouse = clean(udevadm_test(f"/sys/bus/usb/devices/{fs.MOUSE.port}", rules, tree))
    assert mouse.applied(CAMERA) == [] and "uaccess" not in mouse.properties.get("TAGS", "")


def _pin(rules: Path, tree: Path, adapter: fs.Adapter, name: str, tty: str | None = None) -> None:
    text = pinned_rule(find_adapter(f"/dev/{tty or adapter.tty}", tree), name)
    assert lint(pin_file(name), text) == []
    (rules / pin_file(name)).write_text(text)


@pytest.mark.parametrize(
    ("adapter", "twin"),
    [
        # the same model with another serial number
        (fs.FT232R, fs.Adapter("ttyUSB9", 0x0403, 0x6001, "A9ZZZZZZ", "ftdi_sio", "FTDI",
                               "FT232R USB UART", port="1-11", devnum=20)),
        # a CH340 has no serial number: the same model in another USB port
        (fs.CH340, fs.Adapter("ttyUSB9", 0x1A86, 0x7523, None, "ch341", "", "USB Serial",
                              port="1-11", devnum=20)),
    ],
    ids=["by-serial", "by-usb-port"],
)  # fmt: skip
def test_a_pinned_rule_links_its_adapter_only(
    adapter: fs.Adapter, twin: fs.Adapter, rules: Path, tmp_path: Path
) -> None:
    tree = _tree(tmp_path)
    fs.add_adapter(tree, twin)
    _pin(rules, tree, adapter, "focusrail")
    mine = clean(udevadm_test(f"/sys/class/tty/{adapter.tty}", rules, tree))
    assert "LINK 'focusrail'" in mine.applied(pin_file("focusrail"))
    assert "/dev/focusrail" in mine.properties["DEVLINKS"].split()
    other = clean(udevadm_test(f"/sys/class/tty/{twin.tty}", rules, tree))
    assert other.applied(pin_file("focusrail")) == []
    assert "/dev/focusrail" not in other.properties["DEVLINKS"].split()


def test_a_pinned_rule_picks_one_port_of_a_dual_adapter(rules: Path, tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    _pin(rules, tree, fs.DUAL_FTDI, "focusrail", tty="ttyUSB4")  # its second port
    second = clean(udevadm_test("/sys/class/tty/ttyUSB4", rules, tree))
    assert "/dev/focusrail" in second.properties["DEVLINKS"].split()
    first = clean(udevadm_test("/sys/class/tty/ttyUSB3", rules, tree))
    assert "/dev/focusrail" not in first.properties.get("DEVLINKS", "").split()
