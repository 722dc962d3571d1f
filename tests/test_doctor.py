"""`stackrig doctor`: each check on faked system states, then the whole doctor for real on this
machine: libgphoto2's virtual camera, an emulated rail and the real GRBL firmware."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sysfs_tree as fs
from grbl_sim import GrblSim

from rig.cli.camera import SIMULATED_SCENE
from rig.devices.emulators.grbl import GrblEmulator
from rig.devices.emulators.marlin import MarlinEmulator
from rig.doctor import PASS, WARN, Finding, System, findings_for_rig
from rig.doctor.checks import (
    Camera,
    Node,
    PortProbe,
    Process,
    check_cameras,
    check_captures,
    check_gphoto,
    check_groups,
    check_holders,
    check_nodes,
    check_rail,
    check_terminal,
    check_udev,
)
from rig.doctor.system import captures_space, serial_probes
from rig.doctor.udev import shipped_dir
from rig.profiles import Profile, with_overrides

NODE = "/dev/bus/usb/001/004"


def statuses(findings: list[Finding]) -> list[str]:
    return [f.status for f in findings]


# -- the camera ---------------------------------------------------------------------------------


def test_gphoto_and_camera_detection() -> None:
    assert check_gphoto(("2.6.4", "2.5.34", "0.12.2")).title.startswith("python-gphoto2 2.6.4")
    broken = check_gphoto(None, "ImportError: libgphoto2.so.6: cannot open shared object")
    assert broken.blocking and "pip install" in broken.fix and "libgphoto2.so" in broken.title
    none = check_cameras([])
    assert none.blocking and "PTP" in none.fix
    assert check_cameras(None, "could not claim the USB camera").blocking
    found = check_cameras([Camera("Nikon DSC D750", "usb:001,004")])
    assert found.status == PASS and "Nikon DSC D750 on usb:001,004" in found.title
    assert Camera("x", "usb:001,004").node == "bus/usb/001/004"
    assert Camera("x", "ptpip:192.168.1.5").node is None


def fake_proc(root: Path, processes: list[tuple[int, str, list[str], list[str]]]) -> Path:
    """A /proc with these (pid, comm, argv, open files)."""
    for pid, comm, argv, files in processes:
        folder = root / str(pid)
        (folder / "fd").mkdir(parents=True)
        (folder / "comm").write_text(comm + "\n")
        (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        for fd, target in enumerate(files, 3):
            os.symlink(target, folder / "fd" / str(fd))
    (root / "self").mkdir()  # not a process
    return root


def test_holders_by_name_and_by_an_open_camera_node(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", [
        (101, "gvfs-gphoto2-vo", ["/usr/libexec/gvfs-gphoto2-volume-monitor"], []),
        (102, "gvfsd-gphoto2", ["/usr/libexec/gvfsd-gphoto2", "--spawner", ":1.4"], []),
        (103, "python3", ["/usr/bin/python3", "/usr/bin/rapid-photo-downloader"], []),
        (104, "kioworker", ["/usr/lib/kf6/kioworker", "/usr/lib/qt6/plugins/kf6/kio/kio_mtp.so"],
         []),
        (105, "myshooter", ["./myshooter"], ["/dev/pts/1", NODE]),
        (108, "gvfsd-mtp", ["/usr/libexec/gvfsd-mtp", "--spawner", ":1.4"], [NODE]),
        (106, "gvfsd-trash", ["/usr/libexec/gvfsd-trash"], []),  # harmless
        (107, "bash", ["-bash"], [NODE.replace("004", "005")]),  # another USB device
    ])  # fmt: skip
    found = check_holders(System(proc=proc).processes(with_fds=True), [NODE], me=1)
    by_pid = {f.title.split("PID ")[1].split(")")[0]: f for f in found}
    assert sorted(by_pid) == ["101", "102", "103", "104", "105", "108"]
    assert by_pid["101"].status == WARN and "systemctl --user stop" in by_pid["101"].fix
    assert by_pid["102"].blocking and by_pid["102"].fix.startswith("gio mount -s gphoto2")
    assert by_pid["103"].status == WARN and "Rapid Photo Downloader" in by_pid["103"].title
    assert by_pid["104"].blocking and "KIO" in by_pid["104"].title
    assert (
        by_pid["105"].blocking and NODE in by_pid["105"].title and "kill 105" in by_pid["105"].fix
    )
    assert by_pid["108"].blocking and by_pid["108"].fix.startswith("gio mount -s mtp")  # it has it
    assert all(f.device == "camera" for f in found)
    assert statuses(check_holders([Process(1, "bash", ("bash",))], [NODE], me=2)) == [PASS]


def test_cameras_the_kernel_lists_give_their_nodes(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    for device in (fs.D750, fs.MOUSE):
        fs.add_camera(sysfs, device)
    fs.add_adapter(sysfs, fs.FT232R)
    assert System(sys=sysfs).usb_cameras() == [("bus/usb/001/012", "04b0:0437 Nikon Corp. D750")]


# -- access -------------------------------------------------------------------------------------


def test_groups() -> None:
    members = {"plugdev": {"ann"}, "dialout": {"bob"}, "ann": {"ann"}}
    assert statuses(check_groups("root", 0, {"root"}, members)) == [PASS]
    active = check_groups("ann", 1000, {"ann", "plugdev"}, members)
    assert statuses(active) == [PASS, WARN]
    assert active[1].fix == "sudo usermod -aG dialout ann, then log out and in again"
    late = check_groups("bob", 1001, {"bob"}, members)[1]  # added, but logged in before
    assert "this login predates it" in late.title and "newgrp dialout" in late.fix
    missing = check_groups("cy", 1002, {"cy"}, {"dialout": set()})[0]
    assert "no group plugdev" in missing.title and "groupadd --system plugdev" in missing.fix
    assert [f.device for f in active] == ["camera", "rail"]


def test_device_nodes(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    (dev / "bus/usb/001").mkdir(parents=True)
    camera, rail = dev / "bus/usb/001/004", dev / "ttyACM0"
    for node, mode in ((camera, 0o660), (rail, 0o600)):
        node.touch()
        node.chmod(mode)
    system = System(dev=dev, can_open=lambda p: p == camera)  # what access(2) would say
    nodes = [system.node(camera, "the camera (D750)", "camera"),
             system.node(rail, "serial port", "rail"),
             system.node(dev / "bus/usb/001/009", "the camera (vusb)", "camera")]  # fmt: skip
    ok, refused, virtual = check_nodes(nodes, "ann")
    assert ok.status == PASS and "opens for ann" in ok.title and "0660" in ok.title
    assert refused.blocking and refused.device == "rail" and "0600" in refused.title
    assert "stackrig udev install" in refused.fix
    assert virtual.status == PASS and "no device node" in virtual.title
    grouped = Node(rail, "serial port", "rail", False, 0o20660, "root", "dialout")
    assert "usermod -aG dialout ann" in check_nodes([grouped], "ann")[0].fix


def test_udev_rules_installed_current_or_not(tmp_path: Path) -> None:
    rules, hwdb = tmp_path / "rules.d", tmp_path / "hwdb.d"
    rules.mkdir()
    hwdb.mkdir()
    system = System(rules_dir=rules, hwdb_dirs=(hwdb,))
    missing = check_udev(system.udev_files(), system.gphoto_hwdb())
    assert statuses(missing) == [WARN, WARN, WARN]  # two files missing, no gphoto hwdb
    assert "stackrig udev install" in missing[0].fix and "libgphoto2-6" in missing[2].fix
    for f in shipped_dir().glob("*.rules"):
        shutil.copy(f, rules)
    (hwdb / "20-libgphoto2-6.hwdb").write_text("usb:v04B0p0437*\n ID_GPHOTO2=1\n")
    assert statuses(check_udev(system.udev_files(), system.gphoto_hwdb())) == [PASS, PASS]
    (rules / "70-stackrig-rail.rules").write_text("# older\n")
    changed = check_udev(system.udev_files(), system.gphoto_hwdb())
    assert changed[1].status == WARN and "differ" in changed[1].title
    nothing = System(rules_dir=tmp_path / "none", udevadm=lambda: None)
    assert "no udev on this system" in check_udev(nothing.udev_files(), True)[0].title


# -- the rail -----------------------------------------------------------------------------------


def test_rail_findings() -> None:
    grbl = PortProbe("/dev/ttyACM0", "grbl", "GRBL 1.1h", "2341:0043 Arduino Uno")
    absent = PortProbe("/dev/stackrig-rail", None, "no such port", probed=False)
    missing = check_rail("grbl", "/dev/stackrig-rail", [absent, grbl])
    assert missing[0].blocking and "grbl on /dev/ttyACM0 answers" in missing[0].fix
    assert "/dev/ttyACM0 (2341:0043 Arduino Uno): grbl answers" in missing[1].title
    wrong = check_rail("marlin", "/dev/ttyACM0", [grbl])[0]
    assert wrong.blocking and 'protocol = "grbl"' in wrong.fix
    assert statuses(check_rail("grbl", "/dev/ttyACM0", [grbl])) == [PASS]
    uno = PortProbe("/dev/ttyACM0", "grbl", "GRBL 1.1h; it restarted", reset_on_open=True)
    reset = [f for f in check_rail("grbl", "/dev/ttyACM0", [uno]) if f.check == "rail.reset"]
    assert reset[0].status == WARN and "resets when its port opens" in reset[0].title
    assert statuses(check_rail("lens", "/dev/stackrig-rail", [])) == [PASS]


def test_ports_are_probed_only_when_a_controller_may_be_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serial.tools.list_ports_common import ListPortInfo

    from rig.devices.rails import ports

    listed = []
    for device, vid, pid in (("/dev/ttyACM7", 0x2341, 0x0043), ("/dev/ttyUSB7", 0x067B, 0x2303)):
        port = ListPortInfo(device, skip_link_detection=True)
        port.vid, port.pid, port.description = vid, pid, "adapter"
        listed.append(port)
    monkeypatch.setattr(ports.list_ports, "comports", lambda: listed)
    asked: list[str] = []

    def probe(port: str, rail: object = None) -> PortProbe:
        asked.append(port)
        return PortProbe(port, None, "nothing answers")

    found = serial_probes(Profile(name="t").rail, ["/dev/pts/77"], probe=probe)
    assert asked == ["/dev/stackrig-rail", "/dev/pts/77", "/dev/ttyACM7"]  # not the Prolific
    unknown = next(p for p in found if p.port == "/dev/ttyUSB7")
    assert not unknown.probed and "stackrig doctor --port /dev/ttyUSB7" in unknown.answer
    assert next(p for p in found if p.port == "/dev/ttyACM7").usb == "2341:0043 adapter"


def test_findings_for_the_rig_screen_name_the_rail_problem(tmp_path: Path) -> None:
    profile = with_overrides(Profile(name="t"), {"rail.port": str(tmp_path / "rail")}, source="t")
    groups = ("ann", 1000, {"ann"}, {"dialout": set(), "plugdev": {"ann"}})
    found = findings_for_rig(profile, "rail", System(rules_dir=tmp_path, groups=lambda: groups))
    assert [f.check for f in found] == ["rail.port", "groups.dialout", "udev.rail"]
    assert found[0].blocking and "no such port" in found[0].title and found[0].fix
    assert "usermod -aG dialout ann" in found[1].fix
    with pytest.raises(ValueError):
        findings_for_rig(profile, "printer")


# -- the session ----------------------------------------------------------------------------------


def test_captures_folder(tmp_path: Path) -> None:
    problem, free = captures_space(tmp_path / "not yet" / "made")  # made by the first capture
    assert problem is None and free is not None and free > 0
    assert check_captures(tmp_path, None, free, 10**6, "a stack").status == PASS
    short = check_captures(tmp_path, None, 10**9, 3 * 10**9, "a 100-frame stack")
    assert short.blocking and "1.0 GB free; a 100-frame stack needs about 3.0 GB" in short.title
    (tmp_path / "file").write_text("")
    problem, _ = captures_space(tmp_path / "file" / "captures")
    assert problem is not None and check_captures(tmp_path, problem, None, 0, "").blocking


def test_terminal_image_support() -> None:
    assert check_terminal("sixel").status == PASS
    assert check_terminal("halfcell").status == WARN and "Sixel" in check_terminal("halfcell").fix
    assert "not a terminal" in check_terminal("unicode").title


def test_importing_the_doctor_loads_no_hardware_or_ui_library() -> None:
    code = "import sys, json, rig.doctor; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(run.stdout)}
    assert loaded & {"gphoto2", "serial", "textual", "cv2", "PIL"} == set()


# -- for real: the virtual camera, an emulated rail, the GRBL firmware ---------------------------


def doctor(*args: str, camera: bool = True) -> tuple[int, dict[str, object], list[Finding]]:
    env = dict(os.environ)
    if camera:  # libgphoto2's virtual camera (a Nikon D750 behind the real PTP driver)
        env["VCAMERADIR"] = str(SIMULATED_SCENE)
    run = subprocess.run(
        [sys.executable, "-m", "rig.cli", "doctor", "--json", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)
    findings = [
        Finding(**{k: v for k, v in f.items() if k != "blocking"}) for f in report["findings"]
    ]
    assert report["blocking"] == sum(f.blocking for f in findings)
    assert run.returncode == (1 if report["blocking"] else 0)  # the exit status says it
    return run.returncode, report, findings


def profile_file(tmp_path: Path, port: str, protocol: str = "grbl") -> str:
    path = tmp_path / "rig.toml"
    path.write_text(
        f'schema_version = 2\nname = "doctor"\n[rail]\nprotocol = "{protocol}"\nport = "{port}"\n'
        f'[output]\ncaptures_root = "{tmp_path / "captures"}"\n'
    )
    return str(path)


@pytest.fixture
def grbl() -> Iterator[GrblEmulator]:
    with GrblEmulator() as emu:
        yield emu  # type: ignore[misc]


def one(findings: list[Finding], check: str) -> Finding:
    matches = [f for f in findings if f.check == check]
    assert len(matches) == 1, findings
    return matches[0]


def test_doctor_on_the_virtual_camera_and_emulated_rails(
    grbl: GrblEmulator, tmp_path: Path
) -> None:
    with MarlinEmulator() as marlin:
        _, report, found = doctor("--profile", profile_file(tmp_path, grbl.path),
                                  "--port", marlin.path)  # fmt: skip
    camera = one(found, "camera")
    assert (
        camera.status == PASS and "Nikon DSC D750" in camera.title and "VCAMERADIR" in camera.title
    )
    assert one(found, "gphoto2").status == PASS
    rail = one(found, "rail.port")
    assert rail.status == PASS and f"grbl on {grbl.path}: GRBL 1.1h" in rail.title
    assert grbl.moves == [] and not any(b"G1" in c or b"$J" in c for c in grbl.received)
    others = [f for f in found if f.check == "serial" and marlin.path in f.title]
    assert others and "marlin answers" in others[0].title
    captures = one(found, "captures")
    assert captures.status == PASS and str(tmp_path / "captures") in captures.title
    assert one(found, "terminal").status == WARN  # output to a pipe: no terminal
    assert {f["check"] for f in report["findings"]} >= {"camera.holder", "udev.camera"}  # type: ignore[index, union-attr]


def test_doctor_names_a_missing_rail_and_exits_1(tmp_path: Path) -> None:
    code, report, found = doctor("--profile", profile_file(tmp_path, str(tmp_path / "none")))
    assert code == 1 and report["ok"] is False
    rail = one(found, "rail.port")
    assert rail.blocking and "no such port" in rail.title and rail.fix


def test_doctor_text_output(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rig.cli", "doctor", "--profile",
         profile_file(tmp_path, str(tmp_path / "none"))],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "VCAMERADIR": str(SIMULATED_SCENE)},
    )  # fmt: skip
    assert run.returncode == 1 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert any(line.startswith("FAIL  rail: no grbl controller on") for line in lines)
    assert any(line.startswith("      fix: ") for line in lines)
    assert lines[-1].endswith("warning(s)") and "block shooting" in lines[-1]


@pytest.mark.parametrize(
    ("reset_on_open", "given"),
    [(True, "rail.port"), (False, "rail.port"), (True, "--port")],
    ids=["uno-resets-on-open", "no-reset", "uno-found-by-probing"],
)
def test_doctor_on_the_real_grbl_firmware(reset_on_open: bool, given: str, tmp_path: Path) -> None:
    """The profile's port is connected to (which never resets GRBL); any other port is probed
    first, then connected to: either way a board that restarts as its port opens is named."""
    with GrblSim(tmp_path / "sim", reset_on_open=reset_on_open) as sim:
        steps = sim.steps()
        if given == "rail.port":
            _, _, found = doctor("--profile", profile_file(tmp_path, str(sim.link)))
        else:
            profile = profile_file(tmp_path, str(tmp_path / "elsewhere"))
            _, _, found = doctor("--profile", profile, "--port", str(sim.link))
        assert sim.steps() == steps  # nothing moved
    if given == "rail.port":
        rail = one(found, "rail.port")
        assert rail.status == PASS and "GRBL 1.1h" in rail.title
    else:
        assert one(found, "rail.port").blocking  # the profile names another port...
        assert f"grbl on {sim.link} answers" in one(found, "rail.port").fix  # ...and says so
    resets = [f for f in found if f.check == "rail.reset"]
    if reset_on_open:
        assert len(resets) == 1 and resets[0].status == WARN and str(sim.link) in resets[0].title
    else:
        assert resets == []
