"""`stackrig udev rule` and `stackrig udev install` as a user runs them.

``rule`` reads sysfs trees laid out as real adapters (sysfs_tree.py) through its sysfs root,
and the real /sys for the errors. ``install`` runs for real inside a mount namespace whose
/etc/udev/rules.d is a temporary folder and whose /run has no udev daemon: the files are
written as on a real system, and the reload fails the way it does where udev does not run.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sysfs_tree as fs
from udev_sandbox import namespace, udevadm

from rig.cli import main
from rig.doctor.udev import UdevError, install_plan, shipped_dir, shipped_rules

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    for adapter in (fs.FT232R, fs.CH340, fs.CP2102, fs.DUAL_FTDI):
        fs.add_adapter(root, adapter)
    fs.add_builtin_port(root, "ttyS0")
    return root


def rule(capsys: pytest.CaptureFixture[str], tree: Path, *args: str) -> tuple[int, str, str]:
    code = main(["udev", "rule", "--sysfs", str(tree), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_rule_pins_an_ftdi_by_its_serial(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = rule(capsys, tree, "--port", "/dev/ttyUSB0", "--name", "focusrail")
    assert code == 0
    *comments, line = out.splitlines()
    assert all(c.startswith("#") for c in comments)
    assert line == (
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", '
        'ATTRS{serial}=="A50285BI", SYMLINK+="focusrail", GROUP="dialout", MODE="0660", '
        'ENV{ID_MM_DEVICE_IGNORE}="1", OPTIONS+="link_priority=10"'
    )
    assert "/etc/udev/rules.d/71-stackrig-pin-focusrail.rules" in out
    assert 'port = "/dev/focusrail"' in out


def test_rule_pins_a_ch340_by_its_usb_port(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = rule(capsys, tree, "--port", "/dev/ttyUSB1")
    assert code == 0
    line = out.splitlines()[-1]
    assert line.startswith('SUBSYSTEM=="tty", KERNELS=="1-4", ATTRS{idVendor}=="1a86"')
    assert "serial" not in line and 'SYMLINK+="stackrig-rail"' in line
    assert "no serial number" in out and "keep it in that port" in out


def test_rule_does_not_trust_a_serial_many_adapters_share(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = rule(capsys, tree, "--port", "/dev/ttyUSB2")  # a CP2102 saying "0001"
    assert code == 0
    assert 'KERNELS=="1-5"' in out and "ATTRS{serial}" not in out and "'0001' is shared" in out


def test_rule_names_the_port_of_a_dual_adapter(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = rule(capsys, tree, "--port", "/dev/ttyUSB4")
    assert code == 0
    assert 'ENV{ID_USB_INTERFACE_NUM}=="01"' in out and "port 01 of its 2" in out


def test_rule_errors_are_one_clear_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rule(capsys, tree, "--port", "/dev/ttyS0")
    assert code == 1 and "is not on USB" in err and "use /dev/ttyS0 itself" in err
    with pytest.raises(SystemExit) as usage:
        rule(capsys, tree, "--port", "/dev/ttyUSB0", "--name", "../evil")
    assert usage.value.code == 2 and "plain name" in capsys.readouterr().err
    # a pseudo-terminal, in the real /sys: it has no adapter
    primary, secondary = os.openpty()
    try:
        code = main(["udev", "rule", "--port", os.ttyname(secondary)])
    finally:
        os.close(primary)
        os.close(secondary)
    err = capsys.readouterr().err
    assert code == 1 and "pseudo-terminal" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_dry_run_shows_everything_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rules.d"
    target.mkdir()
    assert main(["udev", "install", "--dry-run", "--rules-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert list(target.iterdir()) == []
    for name, text in shipped_rules().items():
        assert f"would write {target / name} (new" in out
        assert f"install -m 0644 {shipped_dir() / name} {target / name}" in out
        assert text in out  # exactly what would be written
    assert f"{udevadm()} control --reload" in out
    assert f"{udevadm()} trigger --subsystem-match=usb --subsystem-match=tty" in out
    assert "nothing was changed" in out


def test_plan_uses_sudo_when_not_root(tmp_path: Path) -> None:
    plan = install_plan(tmp_path, euid=1000, sudo="/usr/bin/sudo")
    lines = plan.lines()
    assert lines[0].startswith("install -m 0644")  # a folder this user may write
    assert lines[-2:] == [
        f"/usr/bin/sudo {udevadm()} control --reload",
        f"/usr/bin/sudo {udevadm()} trigger --subsystem-match=usb --subsystem-match=tty",
    ]


def test_install_fails_clearly_without_udevadm_sudo_or_rules_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # neither udevadm nor sudo on it
    monkeypatch.setattr("rig.doctor.udev.UDEVADM_DIRS", ())
    with pytest.raises(UdevError, match=r"udevadm is not installed.*apt-get install udev"):
        install_plan(tmp_path)
    with pytest.raises(UdevError, match="needs root and sudo is not installed"):
        install_plan(tmp_path, euid=1000, udevadm="/usr/bin/udevadm")
    with pytest.raises(UdevError, match="does not exist: udev is not set up"):
        install_plan(tmp_path / "missing", udevadm="/usr/bin/udevadm")


def _in_namespace(rules_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``stackrig ARGS`` with ``rules_dir`` as /etc/udev/rules.d and a /run without udevd."""
    script = (
        'mount -t tmpfs tmpfs /run && mount --bind "$1" /etc/udev/rules.d && shift && exec "$@"'
    )
    return subprocess.run(
        [*namespace(), "sh", "-c", script, "sh", str(rules_dir), sys.executable, "-m", "rig.cli",
         *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


def test_install_writes_the_rules_and_says_udev_did_not_reload(tmp_path: Path) -> None:
    udevadm()  # fails naming the package when udev is missing
    target = tmp_path / "rules.d"
    target.mkdir()
    run = _in_namespace(target, "udev", "install")
    assert run.returncode == 1, run.stdout + run.stderr
    for name, text in shipped_rules().items():
        assert (target / name).read_text() == text
        assert stat.S_IMODE((target / name).stat().st_mode) == 0o644
    assert "runs:" in run.stdout and "control --reload" in run.stdout
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("stackrig: error: '") and "the rules are installed" in error
    assert "Traceback" not in run.stderr
    again = _in_namespace(target, "udev", "install")
    assert again.returncode == 0 and "installed and current" in again.stdout
    (target / "70-stackrig-rail.rules").write_text("# an older version\n")
    dry = _in_namespace(target, "udev", "install", "--dry-run")
    assert "70-stackrig-rail.rules (replaces a different version" in dry.stdout
    assert "70-stackrig-camera.rules" not in dry.stdout.split("would run:")[0]
