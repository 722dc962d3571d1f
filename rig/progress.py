"""A one-line progress display on stderr: frame count, seconds per frame, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Redraws in place on a terminal; prints one line per step elsewhere (logs, CI)."""

    def __init__(
        self, total: int, label: str = "frames", stream: TextIO | None = None, unit: str = "frame"
    ) -> None:
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = time.perf_counter()
        self.tty = self.stream.isatty()

    def step(self, note: str = "") -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        per = elapsed / self.done
        eta = per * (self.total - self.done)
        width = 24
        filled = int(width * self.done / max(1, self.total))
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"[{bar}] {self.done}/{self.total} {self.label}  {per:.2f} s/{self.unit}  "
            f"ETA {eta:.0f} s  {note}"
        ).rstrip()
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()
