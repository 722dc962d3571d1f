"""stackrig's udev rules: the shipped files, what is installed, a rule pinned to one adapter,
and the steps that install them.

Nothing here needs udev to be running: the adapter is read from sysfs (``sys_root``, so tests
and ``--sysfs`` can point it at a copy), and installing is a list of commands the caller shows
and runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError

RULES_DIR = Path("/etc/udev/rules.d")
DEFAULT_LINK = "stackrig-rail"
LINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Serial numbers that many adapters of one kind share: pinning by them pins nothing.
SHARED_SERIALS = frozenset({"0001", "0123456789", "0123456789ABCDEF", "123456789"})
_GLOB = re.compile(r'[*?\[\]|"\\\s]')  # would be a pattern (or break the quoting) in a rule
TRIGGER = ("trigger", "--subsystem-match=usb", "--subsystem-match=tty")
UDEVADM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")  # a user's PATH may lack sbin


class UdevError(RigError):
    """A rule cannot be made for this port, or the rules cannot be installed here."""


def shipped_dir() -> Path:
    """The rules: packaged into the wheel, or the repository's udev/ folder."""
    packaged = Path(__file__).resolve().parents[1] / "shipped_udev"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "udev"


def shipped_rules(folder: Path | None = None) -> dict[str, str]:
    """File name -> text of every shipped rules file."""
    folder = folder or shipped_dir()
    return {p.name: p.read_text() for p in sorted(folder.glob("*.rules"))}


@dataclass(frozen=True)
class Installed:
    """One shipped rules file and its copy in the rules folder."""

    name: str
    path: Path
    state: str  # "current", "missing" or "different"


def installed(
    rules_dir: Path = RULES_DIR, shipped: dict[str, str] | None = None
) -> list[Installed]:
    out = []
    for name, text in (shipped if shipped is not None else shipped_rules()).items():
        path = rules_dir / name
        try:
            state = "current" if path.read_text() == text else "different"
        except FileNotFoundError:
            state = "missing"
        except OSError:
            state = "different"  # unreadable: not the file we ship, as far as we can tell
        out.append(Installed(name, path, state))
    return out


# -- a rule pinned to one adapter -----------------------------------------------------------


@dataclass(frozen=True)
class UsbAdapter:
    """What sysfs says about the USB device behind a tty."""

    tty: str
    vendor: str  # 4 hex digits, as sysfs writes them
    product: str
    serial: str | None
    manufacturer: str
    model: str
    usb_path: str  # the USB device's name in sysfs: bus-port[.port...], e.g. 1-2 or 1-1.3
    interface: str  # bInterfaceNumber of the tty's interface, e.g. 00
    tty_interfaces: int  # interfaces of the device that have a tty (2 on a dual adapter)

    @property
    def usb_id(self) -> str:
        return f"{self.vendor}:{self.product}"

    @property
    def unique_serial(self) -> str | None:
        """The serial number, when it can tell this adapter from others of its kind."""
        s = self.serial
        if not s or s in SHARED_SERIALS or len(set(s)) == 1 or _GLOB.search(s):
            return None
        return s


def tty_name(port: str) -> str:
    """The kernel's name for ``port`` (``/dev/serial/by-id/...`` and other links resolved)."""
    path = Path(port)
    real = Path(os.path.realpath(path)) if path.exists() else path
    text = str(real)
    return text[len("/dev/") :] if text.startswith("/dev/") else real.name


def find_adapter(port: str, sys_root: Path = Path("/sys")) -> UsbAdapter:
    """The USB adapter behind ``port``, from ``sys_root``/class/tty (no udev needed)."""
    name = tty_name(port)
    entry = sys_root / "class" / "tty" / name
    if not entry.exists():
        raise UdevError(
            f"{port} is not a serial port the kernel lists ({entry} is missing): give the "
            "adapter's port, e.g. /dev/ttyUSB0 or /dev/ttyACM0 (a pseudo-terminal, such as "
            "an emulator's, has no adapter to pin; 'stackrig rail list' shows the ports)"
        )
    here = entry.resolve()
    interface = device = None
    for folder in (here, *here.parents):
        if folder == sys_root or sys_root not in folder.parents:
            break
        if interface is None and (folder / "bInterfaceNumber").is_file():
            interface = folder
        if (folder / "idVendor").is_file() and (folder / "idProduct").is_file():
            device = folder
            break
    if device is None or interface is None:
        raise UdevError(
            f"{port} is not on USB ({here}): a built-in serial port keeps its name, so use "
            f"{port} itself in the profile (rail.port); a pinned rule is for USB adapters"
        )

    def attr(folder: Path, key: str) -> str | None:
        try:
            return (folder / key).read_text().strip() or None
        except OSError:
            return None

    ttys = sum(1 for i in device.glob(f"{device.name}:*") if _has_tty(i))
    return UsbAdapter(
        tty=name,
        vendor=attr(device, "idVendor") or "",
        product=attr(device, "idProduct") or "",
        serial=attr(device, "serial"),
        manufacturer=attr(device, "manufacturer") or "",
        model=attr(device, "product") or "",
        usb_path=device.name,
        interface=attr(interface, "bInterfaceNumber") or "00",
        tty_interfaces=ttys,
    )


def _has_tty(interface: Path) -> bool:
    return any(interface.glob("tty/*")) or any(interface.glob("*/tty/*"))


def check_link_name(name: str) -> str:
    if not LINK_NAME.fullmatch(name):
        raise UdevError(
            f"--name {name!r}: give a plain name for /dev/NAME (letters, digits, . _ -; no /), "
            f"e.g. {DEFAULT_LINK}"
        )
    return name


def pin_file(name: str) -> str:
    """Where a pinned rule goes: after the shipped files, so its link wins (link_priority)."""
    return f"71-stackrig-pin-{name}.rules"


def pinned_rule(a: UsbAdapter, name: str = DEFAULT_LINK) -> str:
    """A rule that gives only this adapter /dev/``name`` (group dialout, mode 0660)."""
    check_link_name(name)
    what = " ".join(x for x in (a.manufacturer, a.model) if x) or "USB serial adapter"
    match = [
        'SUBSYSTEM=="tty"',
        f'ATTRS{{idVendor}}=="{a.vendor}"',
        f'ATTRS{{idProduct}}=="{a.product}"',
    ]
    serial = a.unique_serial
    if serial is not None:
        match.append(f'ATTRS{{serial}}=="{serial}"')
        how = f"by its serial number {serial}"
    else:
        # KERNELS and ATTRS must match the same device: the USB device, named by its port.
        match.insert(1, f'KERNELS=="{a.usb_path}"')
        why = "it has no serial number" if not a.serial else f"its serial {a.serial!r} is shared"
        how = f"by the USB port it is plugged into ({a.usb_path}; {why}): keep it in that port"
    if a.tty_interfaces > 1:  # a dual adapter: the same serial on each of its ports
        match.append(f'ENV{{ID_USB_INTERFACE_NUM}}=="{a.interface}"')
        how += f", port {a.interface} of its {a.tty_interfaces}"
    sets = [
        f'SYMLINK+="{name}"',
        'GROUP="dialout"',
        'MODE="0660"',
        'ENV{ID_MM_DEVICE_IGNORE}="1"',
        'OPTIONS+="link_priority=10"',  # wins /dev/NAME over the shipped rules' generic link
    ]
    file = RULES_DIR / pin_file(name)
    return "\n".join([
        f"# stackrig: /dev/{name} is the {what} ({a.usb_id}) now on /dev/{a.tty},",
        f"# matched {how}.",
        f"# Save as {file}, e.g.:",
        f"#   stackrig udev rule --port /dev/{a.tty} --name {name} | sudo tee {file}",
        "#   sudo udevadm control --reload && sudo udevadm trigger --subsystem-match=tty",
        f'# then set port = "/dev/{name}" in the profile\'s [rail] section.',
        ", ".join(match + sets),
        "",
    ])  # fmt: skip


# -- installing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallPlan:
    """What ``stackrig udev install`` writes and runs, in order."""

    files: list[Installed]  # each shipped file and the state of its installed copy
    commands: list[list[str]]  # the install commands, then reload and trigger

    @property
    def writes(self) -> list[Installed]:
        return [f for f in self.files if f.state != "current"]

    def lines(self) -> list[str]:
        return [shlex.join(c) for c in self.commands]


def find_udevadm() -> str | None:
    found = shutil.which("udevadm")
    if found:
        return found
    return next((f"{d}/udevadm" for d in UDEVADM_DIRS if os.access(f"{d}/udevadm", os.X_OK)), None)


def install_plan(
    rules_dir: Path = RULES_DIR,
    *,
    source: Path | None = None,
    euid: int | None = None,
    sudo: str | None = None,
    udevadm: str | None = None,
) -> InstallPlan:
    """The commands that copy the shipped rules into ``rules_dir`` and make udev apply them:
    with ``sudo`` in front when not root. UdevError when this system cannot do it."""
    source = source or shipped_dir()
    udevadm = udevadm or find_udevadm()
    if udevadm is None:
        raise UdevError(
            "udevadm is not installed, so this system has no udev to install rules into (a "
            "container?). On Debian or Ubuntu: sudo apt-get install udev"
        )
    if not rules_dir.is_dir():
        raise UdevError(
            f"{rules_dir} does not exist: udev is not set up on this system (install the "
            "'udev' package), or give the folder with --rules-dir"
        )
    euid = os.geteuid() if euid is None else euid
    root: list[str] = []  # telling udev to reload needs root, whoever may write the folder
    if euid != 0:
        sudo = sudo or shutil.which("sudo")
        if sudo is None:
            raise UdevError(
                "installing udev rules needs root and sudo is not installed: run 'stackrig "
                "udev install' as root (su -c ...), or copy the files by hand (see README, "
                "'udev rules and stackrig doctor')"
            )
        root = [sudo]
    write = [] if os.access(rules_dir, os.W_OK) else root
    files = installed(rules_dir, shipped_rules(source))
    commands = [
        [*write, "install", "-m", "0644", str(source / f.name), str(f.path)]
        for f in files
        if f.state != "current"
    ]
    if commands:
        commands += [[*root, udevadm, "control", "--reload"], [*root, udevadm, *TRIGGER]]
    return InstallPlan(files, commands)
