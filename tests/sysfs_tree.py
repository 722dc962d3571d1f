"""A sysfs tree laid out as the kernel lays out USB serial adapters and cameras, for tests.

This machine has no USB devices, so the tests build the part of ``/sys`` that describes one:
the PCI host controller, the root hub, the USB device (its ``idVendor``, ``idProduct``,
``serial`` and binary ``descriptors`` attributes), its interfaces and the tty below them, with
the ``subsystem`` and ``driver`` links and the ``uevent`` files the kernel writes. The layout
and values are those of real adapters (``udevadm info -a`` on an FT232R, a CH340, an Uno, a
Tic and a Nikon body). Real udev (``udevadm test``) reads it mounted over ``/sys`` in a private
mount namespace (udev_sandbox.py); ``stackrig udev rule`` reads it through its sysfs root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONTROLLER = "devices/pci0000:00/0000:00:14.0"  # an xHCI controller
BUS = 1


@dataclass(frozen=True)
class Adapter:
    """A USB serial device: one tty per serial interface."""

    tty: str  # ttyUSB0, ttyACM0: the first tty; more interfaces count up
    vendor: int
    product: int
    serial: str | None
    driver: str  # ftdi_sio, ch341, cp210x, cdc_acm
    manufacturer: str
    name: str
    port: str = "1-2"  # bus-port[.port...]: where it is plugged
    ports: int = 1  # serial interfaces (two for a dual adapter)
    devnum: int = 5

    @property
    def acm(self) -> bool:
        return self.driver == "cdc_acm"


FT232R = Adapter("ttyUSB0", 0x0403, 0x6001, "A50285BI", "ftdi_sio", "FTDI", "FT232R USB UART")
CH340 = Adapter("ttyUSB1", 0x1A86, 0x7523, None, "ch341", "", "USB Serial", port="1-4", devnum=6)
CP2102 = Adapter(
    "ttyUSB2", 0x10C4, 0xEA60, "0001", "cp210x", "Silicon Labs", "CP2102 USB to UART Bridge",
    port="1-5", devnum=7,
)  # fmt: skip
UNO = Adapter(
    "ttyACM0", 0x2341, 0x0043, "85736323838351F0D0B1", "cdc_acm", "Arduino (www.arduino.cc)",
    "Arduino Uno", port="1-1.3", devnum=8,
)  # fmt: skip
TIC = Adapter(
    "ttyACM1", 0x1FFB, 0x00B5, "00312345", "cdc_acm", "Pololu Corporation", "Tic T834",
    port="1-6", devnum=9,
)  # fmt: skip
DUAL_FTDI = Adapter(
    "ttyUSB3", 0x0403, 0x6010, "FT4ABCDE", "ftdi_sio", "FTDI", "Dual RS232-HS", port="1-7",
    ports=2, devnum=10,
)  # fmt: skip
OTHER_SERIAL = Adapter(
    "ttyUSB5", 0x067B, 0x2303, None, "pl2303", "Prolific", "USB-Serial Controller", port="1-8",
    devnum=11,
)  # fmt: skip


@dataclass(frozen=True)
class UsbCamera:
    vendor: int
    product: int
    name: str
    serial: str
    interface: tuple[int, int, int] = (6, 1, 1)  # PTP still image capture
    port: str = "1-3"
    devnum: int = 12


D750 = UsbCamera(0x04B0, 0x0437, "D750", "3008811")
VENDOR_CLASS_CAMERA = UsbCamera(0x04A9, 0x9999, "Vendor-class camera", "X1", (0xFF, 0xFF, 0), "1-9")
MOUSE = UsbCamera(0x046D, 0xC077, "USB Optical Mouse", "", (3, 1, 2), "1-10", 13)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _link(path: Path, target: Path) -> None:
    """A relative symlink, as sysfs has: it resolves inside any root the tree is copied to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, path.parent), path)


def _attrs(folder: Path, **values: str) -> None:
    for name, value in values.items():
        _write(folder / name, value + "\n")


def _device(root: Path, folder: Path, subsystem: str, uevent: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _link(folder / "subsystem", root / subsystem)
    driver = uevent.get("DRIVER")
    if driver:
        bus = subsystem.split("/")[-1]
        _link(folder / "driver", root / "bus" / bus / "drivers" / driver)
    _write(folder / "uevent", "".join(f"{k}={v}\n" for k, v in uevent.items()))
    if subsystem == "bus/usb":  # the bus lists its devices and interfaces
        _link(root / "bus" / "usb" / "devices" / folder.name, folder)


def _base(root: Path) -> Path:
    """The PCI controller and its root hub (usb1)."""
    controller = root / CONTROLLER
    if not (controller / "uevent").exists():
        _device(root, controller, "bus/pci", {"DRIVER": "xhci_hcd", "PCI_CLASS": "C0330"})
        hub = controller / f"usb{BUS}"
        _device(root, hub, "bus/usb", {
            "MAJOR": "189", "MINOR": "0", "DEVNAME": f"bus/usb/{BUS:03d}/001",
            "DEVTYPE": "usb_device", "DRIVER": "usb", "PRODUCT": "1d6b/2/602", "TYPE": "9/0/1",
            "BUSNUM": f"{BUS:03d}", "DEVNUM": "001",
        })  # fmt: skip
        _attrs(hub, idVendor="1d6b", idProduct="0002", busnum=str(BUS), devnum="1",
               product="xHCI Host Controller", bDeviceClass="09")  # fmt: skip
        (root / "class" / "tty").mkdir(parents=True, exist_ok=True)
    return controller / f"usb{BUS}"


def _usb_device(
    root: Path, port: str, devnum: int, vendor: int, product: int, interfaces: list[bytes]
) -> Path:
    hub = _base(root)
    parent = hub
    for depth in range(1, len(port.split("."))):  # a device behind a hub sits below it
        parent = parent / ".".join(port.split(".")[:depth])
    folder = parent / port
    _device(root, folder, "bus/usb", {
        "MAJOR": "189", "MINOR": str(devnum - 1), "DEVNAME": f"bus/usb/{BUS:03d}/{devnum:03d}",
        "DEVTYPE": "usb_device", "DRIVER": "usb", "PRODUCT": f"{vendor:x}/{product:x}/600",
        "TYPE": "0/0/0", "BUSNUM": f"{BUS:03d}", "DEVNUM": f"{devnum:03d}",
    })  # fmt: skip
    _attrs(folder, idVendor=f"{vendor:04x}", idProduct=f"{product:04x}", bcdDevice="0600",
           busnum=str(BUS), devnum=str(devnum), bDeviceClass="00",
           bNumInterfaces=f"{len(interfaces):2d}")  # fmt: skip
    (folder / "descriptors").write_bytes(_descriptors(vendor, product, interfaces))
    return folder


def _descriptors(vendor: int, product: int, interfaces: list[bytes]) -> bytes:
    """Device and configuration descriptors as the kernel exposes them (usb_id reads them)."""
    device = bytes([18, 1, 0x00, 0x02, 0, 0, 0, 64]) + vendor.to_bytes(2, "little")
    device += product.to_bytes(2, "little") + bytes([0x00, 0x06, 1, 2, 3, 1])
    body = b"".join(interfaces)
    config = bytes([9, 2]) + (9 + len(body)).to_bytes(2, "little")
    config += bytes([len(interfaces), 1, 0, 0x80, 50])
    return device + config + body


def _interface(number: int, klass: tuple[int, int, int]) -> bytes:
    """An interface descriptor with its two bulk endpoints (usb_id stops at the last
    descriptor before the end, as a real configuration never ends on an interface)."""
    endpoints = bytes([7, 5, 0x81 + number, 2, 0, 2, 0, 7, 5, 0x01 + number, 2, 0, 2, 0])
    return bytes([9, 4, number, 0, 2, *klass, 0]) + endpoints


def _interface_folder(
    root: Path, device: Path, port: str, number: int, klass: tuple[int, int, int], driver: str
) -> Path:
    folder = device / f"{port}:1.{number}"
    c, s, p = klass
    _device(root, folder, "bus/usb", {
        "DEVTYPE": "usb_interface", "DRIVER": driver, "INTERFACE": f"{c}/{s}/{p}",
        "MODALIAS": f"usb:v0000p0000d0600dc00dsc00dp00ic{c:02X}isc{s:02X}ip{p:02X}in{number:02X}",
    })  # fmt: skip
    _attrs(folder, bInterfaceNumber=f"{number:02x}", bInterfaceClass=f"{c:02x}",
           bInterfaceSubClass=f"{s:02x}", bInterfaceProtocol=f"{p:02x}",
           bAlternateSetting=" 0", bNumEndpoints="02")  # fmt: skip
    return folder


def _tty(root: Path, parent: Path, name: str, minor: int, major: int) -> None:
    folder = parent / "tty" / name
    _device(root, folder, "class/tty", {"MAJOR": str(major), "MINOR": str(minor), "DEVNAME": name})
    _link(root / "class" / "tty" / name, folder)


def add_adapter(root: Path, a: Adapter) -> Path:
    """The adapter's tree below ``root`` (a sysfs root); returns its tty's class path."""
    prefix, first = a.tty.rstrip("0123456789"), int(a.tty[len(a.tty.rstrip("0123456789")) :])
    if a.acm:  # each port: a communications interface (the tty) and a data interface
        numbers = [2 * i for i in range(a.ports)]
        klasses = [(2, 2, 1), (10, 0, 0)]
    else:
        numbers = list(range(a.ports))
        klasses = [(0xFF, 0xFF, 0xFF)]
    descriptors = [
        _interface(n + k, klass) for n in numbers for k, klass in enumerate(klasses)
    ]  # fmt: skip
    device = _usb_device(root, a.port, a.devnum, a.vendor, a.product, descriptors)
    values = {"manufacturer": a.manufacturer, "product": a.name}
    if a.serial is not None:
        values["serial"] = a.serial
    _attrs(device, **{k: v for k, v in values.items() if v})
    for i, number in enumerate(numbers):
        name = f"{prefix}{first + i}"
        for k, klass in enumerate(klasses):
            folder = _interface_folder(root, device, a.port, number + k, klass, a.driver)
            if k:
                continue
            if a.acm:
                _tty(root, folder, name, first + i, 166)
            else:
                port = folder / name
                _device(root, port, "bus/usb-serial", {"DRIVER": a.driver})
                _attrs(port, port_number="0")
                _tty(root, port, name, first + i, 188)
    return root / "class" / "tty" / a.tty


def add_camera(root: Path, c: UsbCamera) -> Path:
    """A camera (or any single-interface USB device); returns its USB device folder."""
    device = _usb_device(root, c.port, c.devnum, c.vendor, c.product, [_interface(0, c.interface)])
    _attrs(device, manufacturer="Nikon Corp." if c.vendor == 0x04B0 else "Vendor", product=c.name)
    if c.serial:
        _attrs(device, serial=c.serial)
    _interface_folder(root, device, c.port, 0, c.interface, "")
    return device


def add_builtin_port(root: Path, name: str = "ttyS0") -> Path:
    """A serial port on the mainboard (not USB)."""
    folder = root / "devices" / "pnp0" / "00:00" / "tty" / name
    _device(root, folder.parent.parent, "bus/pnp", {"DRIVER": "serial"})
    _device(root, folder, "class/tty", {"MAJOR": "4", "MINOR": "64", "DEVNAME": name})
    _link(root / "class" / "tty" / name, folder)
    return root / "class" / "tty" / name
