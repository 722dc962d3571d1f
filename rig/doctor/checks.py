"""The doctor's checks: facts about the system in, findings with the fix out. Pure.

Each check takes plain values (a process list, group names, stat results, probe answers), so
tests hand it any system they want; :mod:`rig.doctor.system` reads the real one.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rig.doctor.udev import Installed

PASS, WARN, FAIL = "pass", "warn", "fail"  # fail: shooting cannot work until it is fixed


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report: what it found, and the exact fix when it is not fine."""

    check: str  # a stable name: "camera", "groups.dialout", "rail.port", ...
    status: str  # PASS, WARN or FAIL
    title: str
    fix: str = ""
    device: str | None = None  # "camera" or "rail" when it is about one (what the TUI shows)

    @property
    def blocking(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "blocking": self.blocking}


# -- camera -----------------------------------------------------------------------------------


def check_gphoto(versions: tuple[str, str, str] | None, error: str = "") -> Finding:
    """``versions``: python-gphoto2, libgphoto2 and libgphoto2_port; None when not importable."""
    if versions is None:
        return Finding(
            "gphoto2", FAIL, f"python-gphoto2 cannot be loaded: {error}",
            "pip install --force-reinstall 'gphoto2>=2.5.1' (its binary wheel bundles "
            "libgphoto2), in the environment stackrig runs from", "camera",
        )  # fmt: skip
    python, lib, port = versions
    return Finding(
        "gphoto2", PASS, f"python-gphoto2 {python}, libgphoto2 {lib} (port library {port})",
        device="camera",
    )  # fmt: skip


@dataclass(frozen=True)
class Camera:
    model: str
    port: str  # libgphoto2's port: usb:BBB,DDD

    @property
    def node(self) -> str | None:
        """The device node of a USB camera, relative to /dev."""
        if not self.port.startswith("usb:") or "," not in self.port:
            return None
        bus, dev = self.port[4:].split(",", 1)
        return f"bus/usb/{bus}/{dev}" if bus.isdigit() and dev.isdigit() else None


def check_cameras(
    cameras: Sequence[Camera] | None, error: str = "", virtual: bool = False
) -> Finding:
    if cameras is None:
        return Finding("camera", FAIL, f"camera detection failed: {error}", device="camera")
    if not cameras:
        return Finding(
            "camera", FAIL, "no camera detected",
            "switch the camera on, set its USB mode to PTP / 'PC remote' (not mass storage), "
            "connect it directly (not through an unpowered hub), then run "
            "'stackrig camera list'", "camera",
        )  # fmt: skip
    names = ", ".join(f"{c.model} on {c.port}" for c in cameras)
    note = " (libgphoto2's virtual camera: VCAMERADIR is set)" if virtual else ""
    return Finding("camera", PASS, f"camera detected: {names}{note}", device="camera")


_INTERPRETER = re.compile(r"(python|perl)[\d.]*")


@dataclass(frozen=True)
class Process:
    pid: int
    comm: str  # /proc/PID/comm: the name, cut to 15 characters
    argv: tuple[str, ...]  # /proc/PID/cmdline; empty for kernel threads or unreadable ones
    fds: tuple[str, ...] = ()  # where its open file descriptors point (own processes only)

    def names(self) -> set[str]:
        names = {self.comm}
        if self.argv:
            names.add(os.path.basename(self.argv[0]))
            if len(self.argv) > 1 and _INTERPRETER.fullmatch(os.path.basename(self.argv[0])):
                names.add(os.path.basename(self.argv[1]))  # a script: its own name counts
        return names

    def is_named(self, name: str) -> bool:
        # comm is cut to 15 characters; a full name from argv must match whole
        return any(n == name or (len(n) == 15 and name.startswith(n)) for n in self.names())


_STOP = "then unplug and replug the camera"
# Programs that claim a camera as it is plugged in, or may hold it: (name, status, what, fix).
HOLDERS: tuple[tuple[str, str, str, str], ...] = (
    ("gvfsd-gphoto2", FAIL, "the desktop (gvfs) has the camera mounted, so libgphoto2 cannot "
     "claim it", f"gio mount -s gphoto2, {_STOP}"),
    ("gvfs-gphoto2-volume-monitor", WARN, "GNOME's gvfs gphoto2 volume monitor runs: it mounts a "
     "camera as it is plugged in, and then holds it",
     "systemctl --user stop gvfs-gphoto2-volume-monitor (to keep it off: systemctl --user mask "
     f"gvfs-gphoto2-volume-monitor), {_STOP}"),
    ("gvfsd-mtp", WARN, "the desktop (gvfs) has an MTP device mounted, which may be the camera",
     f"gio mount -s mtp, {_STOP}"),
    ("gvfs-mtp-volume-monitor", WARN, "GNOME's gvfs MTP volume monitor runs: it may mount the "
     "camera as it is plugged in", "systemctl --user stop gvfs-mtp-volume-monitor (to keep it "
     f"off: systemctl --user mask gvfs-mtp-volume-monitor), {_STOP}"),
    ("gphoto2", WARN, "another gphoto2 command runs", "let it finish or stop it"),
    ("entangle", WARN, "Entangle (tethered shooting) runs", "quit Entangle"),
    ("darktable", WARN, "darktable runs (its tethering holds the camera)", "quit darktable"),
    ("shotwell", WARN, "Shotwell runs (its import holds the camera)", "quit Shotwell"),
    ("digikam", WARN, "digiKam runs (its camera import holds the camera)", "quit digiKam"),
    ("gtkam", WARN, "gtkam runs", "quit gtkam"),
    ("rapid-photo-downloader", WARN, "Rapid Photo Downloader runs", "quit it"),
)  # fmt: skip
KIO_WORKERS = ("kioworker", "kioslave5", "kioslave", "kiod5", "kiod6")
KIO_CAMERA = ("kio_mtp", "kamera", "kio_camera")
KIO = ("kio", FAIL, "KDE's KIO has the camera open",
       f"close the Dolphin window or file dialog showing the camera, {_STOP}")  # fmt: skip


def _holder(p: Process) -> tuple[str, str, str, str] | None:
    known = next((h for h in HOLDERS if p.is_named(h[0])), None)
    if known is None and any(p.is_named(k) for k in KIO_WORKERS):
        return KIO if any(c in a for a in p.argv for c in KIO_CAMERA) else None
    return known


def check_holders(
    processes: Iterable[Process], camera_nodes: Sequence[str] = (), me: int | None = None
) -> list[Finding]:
    """Programs that hold, or will grab, the camera: by name, and by an open device node."""
    me = os.getpid() if me is None else me
    out = []
    for p in processes:
        if p.pid == me:
            continue
        known = _holder(p)
        holds = sorted(n for n in camera_nodes if n in p.fds)
        if holds:  # whatever it is, it has the camera's device node open now
            fix = known[3] if known else f"quit {p.comm} (or: kill {p.pid}), {_STOP}"
            title = f"{p.comm} (PID {p.pid}) has the camera open ({holds[0]})"
            out.append(Finding("camera.holder", FAIL, title, fix, "camera"))
        elif known is not None:
            _, status, what, fix = known
            out.append(Finding("camera.holder", status, f"{what} (PID {p.pid})", fix, "camera"))
    if not out:
        out.append(Finding(
            "camera.holder", PASS, "no other program holds the camera (gvfs, KDE, photo apps)",
            device="camera",
        ))  # fmt: skip
    return out


# -- access: groups, device nodes, udev rules -------------------------------------------------

GROUPS = (
    ("plugdev", "camera", "the camera when no desktop session is active (headless, SSH)"),
    ("dialout", "rail", "the rail controller's serial port"),
)


def check_groups(
    user: str, euid: int, active: Iterable[str], members: dict[str, set[str]]
) -> list[Finding]:
    """``active``: the groups of this process; ``members``: group -> users in the database."""
    if euid == 0:
        return [Finding("groups", PASS, "running as root: every device opens (for everyday use, "
                        "run stackrig as your own user)")]  # fmt: skip
    active = set(active)
    out = []
    for group, device, gives in GROUPS:
        check = f"groups.{group}"
        join = f"sudo usermod -aG {group} {user}, then log out and in again"
        if group in active:
            out.append(Finding(check, PASS, f"{user} is in group {group} ({gives})", device=device))
        elif group not in members:
            out.append(Finding(
                check, WARN, f"there is no group {group} on this system (it gives {gives})",
                f"sudo groupadd --system {group} && {join}; the rules then give it {gives}",
                device,
            ))  # fmt: skip
        elif user in members[group]:
            out.append(Finding(
                check, WARN, f"{user} was added to group {group}, but this login predates it",
                f"log out and in again (or run 'newgrp {group}' in this shell)", device,
            ))  # fmt: skip
        else:
            out.append(Finding(check, WARN, f"{user} is not in group {group} ({gives})", join,
                               device))  # fmt: skip
    return out


@dataclass(frozen=True)
class Node:
    """A device node stackrig needs, as this user sees it."""

    path: Path
    what: str  # "the camera (Nikon DSC D750)", "the rail port"
    device: str  # "camera" or "rail"
    usable: bool  # open for reading and writing by this process (ACLs included)
    mode: int | None = None  # None: the node does not exist
    owner: str = ""
    group: str = ""


def check_nodes(nodes: Sequence[Node], user: str) -> list[Finding]:
    out = []
    for n in nodes:
        check = f"{n.device}.node"
        if n.mode is None:
            status = PASS if n.device == "camera" else FAIL
            out.append(Finding(
                check, status, f"{n.what}: no device node {n.path}"
                + (" (a virtual or network camera has none)" if status == PASS else ""),
                "" if status == PASS else "plug the controller in, or set rail.port in the profile",
                n.device,
            ))  # fmt: skip
            continue
        perms = f"{n.owner}:{n.group} {stat.S_IMODE(n.mode):04o}"
        if n.usable:
            out.append(Finding(check, PASS, f"{n.what}: {n.path} opens for {user} ({perms})",
                               device=n.device))  # fmt: skip
            continue
        group = n.group if n.group not in ("root", "") else None
        fix = "stackrig udev install (it shows what it does with --dry-run), then replug it"
        if group is not None:
            fix += f"; or join its group: sudo usermod -aG {group} {user}, then log in again"
        out.append(Finding(check, FAIL, f"{n.what}: {n.path} does not open for {user} ({perms})",
                           fix, n.device))  # fmt: skip
    return out


def check_udev(files: Sequence[Installed] | None, gphoto_hwdb: bool) -> list[Finding]:
    """``files`` None: no udev on this system."""
    if files is None:
        return [Finding(
            "udev", WARN, "no udev on this system (a container?): device permissions are what "
            "/dev gives", "on a full Linux system: sudo apt-get install udev, then "
            "'stackrig udev install'",
        )]  # fmt: skip
    out = []
    for f in files:
        device = "camera" if "camera" in f.name else "rail"
        if f.state == "current":
            out.append(Finding(f"udev.{device}", PASS, f"udev rules {f.path} installed and "
                               "current", device=device))  # fmt: skip
        else:
            said = "not installed" if f.state == "missing" else "differ from this stackrig's"
            out.append(Finding(
                f"udev.{device}", WARN, f"udev rules {f.path} {said}",
                "stackrig udev install (shows what it does first with --dry-run), then replug "
                f"the {device}", device,
            ))  # fmt: skip
    if not gphoto_hwdb:
        out.append(Finding(
            "udev.hwdb", WARN, "udev has no libgphoto2 hardware database: cameras that do not "
            "announce the PTP class get no access from the rules",
            "install your distribution's libgphoto2 (Debian, Ubuntu: sudo apt-get install "
            "libgphoto2-6, or libgphoto2-6t64 on newer releases)", "camera",
        ))  # fmt: skip
    return out


# -- rail -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortProbe:
    """What answered on one serial port (nothing moves: identification queries only)."""

    port: str
    protocol: str | None  # None: nothing answered, or not probed
    answer: str  # the firmware's identification, or why there is none
    usb: str = ""  # "0403:6001 FT232R USB UART", "" for a pseudo-terminal
    probed: bool = True
    reset_on_open: bool = False  # the controller restarted as the port opened


def check_rail(protocol: str, port: str, probes: Sequence[PortProbe]) -> list[Finding]:
    """The profile's rail (``protocol`` on ``port``) and every other serial port probed."""
    out = []
    if protocol == "lens":
        out.append(Finding("rail.port", PASS, "focus by the camera's lens: no serial rail needed",
                           device="rail"))  # fmt: skip
    mine = next((p for p in probes if p.port == port), None)
    answering = [p for p in probes if p.protocol is not None]
    if protocol != "lens":
        if mine is None or mine.protocol is None:
            found = ", ".join(f"{p.protocol} on {p.port}" for p in answering)
            fix = (
                f"set rail.port and rail.protocol in the profile ({found} answers)"
                if found
                else "connect and power the controller; 'stackrig rail list' shows the ports"
            )
            said = mine.answer if mine is not None else "it does not exist"
            out.append(Finding("rail.port", FAIL, f"rail: no {protocol} controller on {port} "
                               f"({said})", fix, "rail"))  # fmt: skip
        elif mine.protocol != protocol:
            out.append(Finding(
                "rail.port", FAIL, f"rail: {port} answers as {mine.protocol}, but the profile "
                f"says {protocol}", f'set protocol = "{mine.protocol}" in the profile\'s [rail]',
                "rail",
            ))  # fmt: skip
        else:
            out.append(Finding("rail.port", PASS, f"rail: {protocol} on {port}: {mine.answer}",
                               device="rail"))  # fmt: skip
    for p in probes:
        where = f"{p.port} ({p.usb})" if p.usb else p.port
        if p.reset_on_open:
            out.append(Finding(
                "rail.reset", WARN, f"the controller on {p.port} resets when its port opens "
                "(an Uno's DTR auto-reset): its position restarts at 0 on the first connect "
                "after it is plugged in", "zero or home it after connecting (stackrig keeps "
                "DTR raised afterwards, so later connects keep the position); to stop it for "
                "good, a 10 uF capacitor between RESET and GND", "rail",
            ))  # fmt: skip
        if p is mine:
            continue
        if not p.probed:
            out.append(Finding("serial", PASS, f"serial port {where}: not probed ({p.answer})"))
        elif p.protocol is None:
            out.append(Finding("serial", PASS, f"serial port {where}: no controller answers "
                               f"({p.answer})"))  # fmt: skip
        else:
            out.append(Finding("serial", PASS, f"serial port {where}: {p.protocol} answers "
                               f"({p.answer})", device="rail"))  # fmt: skip
    return out


# -- captures and terminal --------------------------------------------------------------------


def check_captures(
    root: Path, problem: str | None, free: int | None, need: int, stack: str
) -> Finding:
    """``problem``: why ``root`` (or the folder it will be made in) cannot be written."""
    if problem is not None:
        return Finding(
            "captures",
            FAIL,
            f"captures folder: {problem}",
            "fix its permissions, or set output.captures_root in the profile",
        )
    assert free is not None
    gb = f"{free / 1e9:.1f} GB free; {stack} needs about {need / 1e9:.1f} GB"
    if free < need:
        return Finding(
            "captures",
            FAIL,
            f"captures folder {root}: not enough space ({gb})",
            "free some space, or set output.captures_root to a larger disk",
        )
    return Finding("captures", PASS, f"captures folder {root}: writable, {gb}")


RENDERERS = {
    "sixel": "Sixel graphics (full resolution)",
    "tgp": "the kitty graphics protocol (full resolution)",
    "halfcell": "coloured half blocks (low resolution)",
    "unicode": "grey shade characters (this output is not a terminal)",
}


def check_terminal(renderer: str) -> Finding:
    said = RENDERERS.get(renderer, renderer)
    if renderer in ("sixel", "tgp"):
        return Finding("terminal", PASS, f"preview: the terminal draws images with {said}")
    if renderer == "unicode":
        return Finding(
            "terminal",
            WARN,
            f"preview: {said}",
            "run 'stackrig doctor' in the terminal you run stackrig in",
        )
    return Finding(
        "terminal", WARN, f"preview: this terminal draws images with {said}",
        "for a sharp preview use a terminal with Sixel or kitty graphics (kitty, WezTerm, foot, "
        "Konsole, xterm -ti vt340), outside tmux/screen",
    )  # fmt: skip
