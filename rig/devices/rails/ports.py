"""Finding the controller: serial ports with a guess, and a probe that moves nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import serial
from serial.tools import list_ports

from rig.errors import RailError

# USB ids seen on focus-rail controllers -> what usually sits behind them.
KNOWN_IDS: dict[tuple[int, int], str] = {
    (0x2341, 0x0043): "Arduino Uno (GRBL rail?)",
    (0x2341, 0x0001): "Arduino Uno (GRBL rail?)",
    (0x2A03, 0x0043): "Arduino Uno clone (GRBL rail?)",
    (0x1A86, 0x7523): "CH340 USB-serial (GRBL/Marlin/Sangaboard?)",
    (0x0403, 0x6001): "FTDI USB-serial (GRBL/Marlin?)",
    (0x10C4, 0xEA60): "CP210x USB-serial (GRBL/Marlin?)",
    (0x2341, 0x0042): "Arduino Mega (Marlin/RAMPS?)",
    (0x2341, 0x0010): "Arduino Mega (Marlin/RAMPS?)",
    (0x0483, 0x5740): "STM32 virtual COM (Marlin board?)",
    (0x1D50, 0x6029): "LPC176x board (Marlin?)",
    (0x2341, 0x8036): "ATmega32U4 (Sangaboard?)",
    (0x1FFB, 0x00B3): "Pololu Tic T825",
    (0x1FFB, 0x00B5): "Pololu Tic T834",
    (0x1FFB, 0x00BD): "Pololu Tic T500",
    (0x1FFB, 0x00C3): "Pololu Tic 36v4",
    (0x1FFB, 0x00C9): "Pololu Tic T249",
}


@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    guess: str

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None else "-"


def list_serial_ports() -> list[PortInfo]:
    ports = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        guess = KNOWN_IDS.get((p.vid, p.pid), "") if p.vid is not None else ""
        ports.append(PortInfo(p.device, p.description or "", p.vid, p.pid, p.serial_number, guess))
    return ports


@dataclass(frozen=True)
class ProbeResult:
    protocol: str  # "grbl" | "marlin" | "sangaboard" | "tic"
    answer: str


def probe(port: str, timeout_s: float = 2.5) -> ProbeResult:
    """Ask each known firmware who it is, with queries that move nothing."""
    attempts: list[tuple[str, int, Callable[[serial.Serial, float], str | None]]] = [
        ("grbl", 115200, _ask_grbl),
        ("marlin", 115200, _ask_marlin),
        ("sangaboard", 115200, _ask_sangaboard),
        ("tic", 9600, _ask_tic),
    ]
    for protocol, baud, ask in attempts:
        try:
            with serial.serial_for_url(port, baudrate=baud, timeout=0.05) as link:
                answer = ask(link, time.monotonic() + timeout_s)
        except serial.SerialException as exc:
            raise RailError(f"cannot open {port}: {exc}") from exc
        if answer:
            return ProbeResult(protocol, answer)
    raise RailError(
        f"nothing on {port} answered as GRBL, Marlin, Sangaboard or a Pololu Tic: check the "
        "cable and power, and that no other program holds the port"
    )


def _lines_until(link: serial.Serial, deadline: float, wanted: str) -> str | None:
    buffer = b""
    while time.monotonic() < deadline:
        buffer += link.read(256)
        for line in buffer.decode("ascii", errors="replace").splitlines():
            if wanted in line:
                return line.strip()
    return None


def _ask_grbl(link: serial.Serial, deadline: float) -> str | None:
    link.reset_input_buffer()
    link.write(b"\x18")  # soft reset: prints the banner, moves nothing
    return _lines_until(link, deadline, "Grbl ")


def _ask_marlin(link: serial.Serial, deadline: float) -> str | None:
    link.reset_input_buffer()
    link.write(b"\nM115\n")
    return _lines_until(link, deadline, "FIRMWARE_NAME:Marlin")


def _ask_sangaboard(link: serial.Serial, deadline: float) -> str | None:
    link.reset_input_buffer()
    link.write(b"\nversion\n")
    return _lines_until(link, deadline, "Sangaboard Firmware")


def _ask_tic(link: serial.Serial, deadline: float) -> str | None:
    link.reset_input_buffer()
    link.write(bytes([0xA1, 0x00, 0x01]))  # get variable: operation state (1 byte)
    while time.monotonic() < deadline:
        data = link.read(1)
        if data and data[0] in (0, 2, 4, 6, 8, 10):
            return f"Pololu Tic (operation state {data[0]})"
        if data:
            return None
    return None
