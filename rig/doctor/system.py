"""The facts the doctor's checks take, read from this machine.

:class:`System` holds the roots (``/proc``, ``/sys``, ``/dev``, the udev folders) and how to
tell whether a node opens, so a test points it at a folder it built. The camera, the serial
ports and the terminal are read by the functions below; each returns plain values for
:mod:`rig.doctor.checks`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.doctor.checks import Camera, Node, PortProbe, Process
from rig.doctor.udev import RULES_DIR, Installed, find_udevadm, installed
from rig.errors import RigError

Groups = tuple[str, int, set[str], dict[str, set[str]]]  # see user_groups()
HWDB_DIRS = (Path("/etc/udev/hwdb.d"), Path("/usr/lib/udev/hwdb.d"), Path("/lib/udev/hwdb.d"))
CONNECTS = ("grbl", "marlin")  # their connect only asks, and says whether the port reset them


def _can_open(path: Path) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


@dataclass(frozen=True)
class System:
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    dev: Path = Path("/dev")
    rules_dir: Path = RULES_DIR
    hwdb_dirs: tuple[Path, ...] = HWDB_DIRS
    can_open: Callable[[Path], bool] = field(default=_can_open)
    udevadm: Callable[[], str | None] = field(default=find_udevadm)
    groups: Callable[[], Groups] = field(default=lambda: user_groups())

    def processes(self, with_fds: bool = False) -> list[Process]:
        """Every process /proc lists; open files only where readable (own processes)."""
        out = []
        for entry in self.proc.iterdir() if self.proc.is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                comm = (entry / "comm").read_text().strip()
                raw = (entry / "cmdline").read_bytes()
            except OSError:  # it ended meanwhile, or is not ours to read
                continue
            argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
            out.append(Process(int(entry.name), comm, argv, self._fds(entry) if with_fds else ()))
        return out

    def _fds(self, entry: Path) -> tuple[str, ...]:
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            return ()
        targets = []
        for fd in fds:
            try:
                targets.append(os.readlink(fd))
            except OSError:
                continue
        return tuple(targets)

    def node(self, path: Path, what: str, device: str) -> Node:
        try:
            st = path.stat()
        except OSError:
            return Node(path, what, device, False)
        return Node(path, what, device, self.can_open(path), st.st_mode,
                    _name(st.st_uid, "user"), _name(st.st_gid, "group"))  # fmt: skip

    def usb_cameras(self) -> list[tuple[str, str]]:
        """(node relative to /dev, "vendor:product name") of each USB device the kernel lists
        with a PTP still-image interface, whether or not libgphoto2 detects it."""
        out = []
        for device in sorted((self.sys / "bus" / "usb" / "devices").glob("*")):
            if not any(_read(i / "bInterfaceClass") == "06" and _read(i / "bInterfaceSubClass")
                       == "01" for i in device.glob(f"{device.name}:*")):  # fmt: skip
                continue
            bus, dev = _read(device / "busnum"), _read(device / "devnum")
            if bus.isdigit() and dev.isdigit():
                name = f"{_read(device / 'idVendor')}:{_read(device / 'idProduct')}"
                model = " ".join(x for x in (_read(device / "manufacturer"),
                                             _read(device / "product")) if x)  # fmt: skip
                out.append((f"bus/usb/{int(bus):03d}/{int(dev):03d}", f"{name} {model}".strip()))
        return out

    def udev_files(self) -> list[Installed] | None:
        """The shipped rules' installed state; None when this system has no udev."""
        if not self.rules_dir.is_dir() and self.udevadm() is None:
            return None
        return installed(self.rules_dir)

    def gphoto_hwdb(self) -> bool:
        return any(any(d.glob("*gphoto*")) for d in self.hwdb_dirs if d.is_dir())


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _name(number: int, kind: str) -> str:
    try:
        if kind == "user":
            import pwd

            return pwd.getpwuid(number).pw_name
        import grp

        return grp.getgrgid(number).gr_name
    except (KeyError, ImportError):
        return str(number)


def user_groups() -> Groups:
    """(user, effective uid, this process's groups, group -> members in the database)."""
    import grp
    import pwd

    euid = os.geteuid()
    try:
        me = pwd.getpwuid(euid)
        user, primary = me.pw_name, me.pw_gid
    except KeyError:
        user, primary = str(euid), os.getegid()
    active = {_name(g, "group") for g in {*os.getgroups(), os.getegid()}}
    members = {g.gr_name: set(g.gr_mem) for g in grp.getgrall()}
    for g in grp.getgrall():
        if g.gr_gid == primary:
            members[g.gr_name].add(user)
    return user, euid, active, members


# -- camera -----------------------------------------------------------------------------------


def gphoto_versions() -> tuple[tuple[str, str, str] | None, str]:
    try:
        import gphoto2 as gp

        return (
            str(gp.__version__),
            gp.gp_library_version(gp.GP_VERSION_SHORT)[0],
            gp.gp_port_library_version(gp.GP_VERSION_SHORT)[0],
        ), ""
    except Exception as exc:  # ImportError, or a wheel whose bundled library will not load
        return None, f"{type(exc).__name__}: {exc}"


def cameras() -> tuple[list[Camera] | None, str]:
    try:
        from rig.devices.gphoto import list_cameras

        return [Camera(c.model, c.port) for c in list_cameras()], ""
    except (RigError, ImportError) as exc:
        return None, str(exc)


# -- serial ports -----------------------------------------------------------------------------


def probe_port(port: str, rail: Any = None, connect: bool = True) -> PortProbe:
    """Who answers on ``port``, with queries that move nothing.

    ``rail`` (a profile's rail section) names the controller expected there: GRBL and Marlin
    are then only connected to, as stackrig connects (which never resets GRBL: probing would,
    and a reset forgets the zero). Anything else is probed (``stackrig rail probe``), and a
    GRBL or Marlin found is connected to as well, which tells whether it restarted as its
    port opened.
    """
    from rig.devices.rails import ports

    if not os.path.exists(port):
        return PortProbe(port, None, "no such port", probed=False)
    if rail is not None and rail.protocol in CONNECTS:
        said = _connect(rail, port)
        if not isinstance(said, RigError):
            return _identified(port, rail.protocol, said)
    try:
        found = ports.probe(port)
    except RigError as exc:
        return PortProbe(port, None, str(exc))
    if not connect or found.protocol not in CONNECTS:
        return PortProbe(port, found.protocol, found.answer)
    from rig.profiles.schema import RailSection

    same = rail is not None and rail.protocol == found.protocol
    said = _connect(rail if same else RailSection(protocol=found.protocol), port)
    if isinstance(said, RigError):
        return PortProbe(port, found.protocol, f"{found.answer}; connecting failed: {said}")
    return _identified(port, found.protocol, said)


def _connect(rail: Any, port: str) -> str | RigError:
    from rig.devices.rails.registry import make_driver

    try:
        driver = make_driver(rail, port)
    except RigError as exc:
        return exc
    try:
        return driver.connect()
    except RigError as exc:
        return exc
    finally:
        driver.close()


def _identified(port: str, protocol: str, identity: str) -> PortProbe:
    # Both drivers say so in their identification: "...restarted / started up as the port opened"
    return PortProbe(port, protocol, identity, reset_on_open="as the port opened" in identity)


def serial_probes(
    rail: Any,
    extra: Sequence[str] = (),
    listed: Callable[[], Iterable[Any]] | None = None,
    probe: Callable[..., PortProbe] = probe_port,
) -> list[PortProbe]:
    """The profile's rail port, the ports given, and every serial port the system lists: the
    ones with a known controller's USB id probed, the others named but left alone."""
    from rig.devices.rails import ports

    listing = list((listed or ports.list_serial_ports)())
    usb = {os.path.realpath(p.device): f"{p.usb_id} {p.description}" for p in listing
           if p.vid is not None}  # fmt: skip
    wanted: dict[str, tuple[str, bool]] = {}  # real path -> (name to show, probe it)
    if rail is not None and rail.protocol != "lens":
        wanted[os.path.realpath(rail.port)] = (rail.port, True)
    for port in extra:
        wanted.setdefault(os.path.realpath(port), (port, True))
    for p in listing:
        wanted.setdefault(os.path.realpath(p.device), (p.device, bool(p.guess)))
    out = []
    for real, (port, known) in wanted.items():
        if known:
            mine = rail if rail is not None and port == rail.port else None
            result = probe(port, mine)
        else:
            result = PortProbe(port, None, "no known controller's USB id; to ask it: stackrig "
                               f"doctor --port {port}", probed=False)  # fmt: skip
        out.append(PortProbe(result.port, result.protocol, result.answer, usb.get(real, ""),
                             result.probed, result.reset_on_open))  # fmt: skip
    return out


# -- captures and terminal --------------------------------------------------------------------


def captures_space(root: Path) -> tuple[str | None, int | None]:
    """(why ``root`` cannot be written, or None; free bytes there). A missing root is made by
    the first capture, so its nearest existing parent is asked."""
    from rig.outputs import check_folder_writable

    existing = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    try:
        check_folder_writable(existing, "folder" if existing == root else "parent folder")
    except RigError as exc:
        return str(exc), None
    return None, shutil.disk_usage(existing).free


def image_renderer() -> str:
    """What the TUI's preview draws with in this terminal (textual-image's detection)."""
    from rig.tui.widgets.images import renderer_name

    return renderer_name("auto")
