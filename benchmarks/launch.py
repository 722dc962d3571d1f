"""Run a command from a small launcher process, so its peak RSS is its own.

Why: on Linux a child's ``ru_maxrss`` (``getrusage(RUSAGE_SELF)`` inside it, or the rusage
``wait4`` returns for it) starts at the resident size of the process that forked it: ``execve``
records the outgoing address space's high-water mark. Spawned straight from a benchmark process
holding a few hundred MiB, every child would report at least that. Spawned from this launcher
(a bare interpreter, about 10 MiB), the floor is the launcher's size.

``python -m benchmarks.launch RESULT.json -- COMMAND...`` runs COMMAND with the launcher's stdio
and writes ``{"returncode", "seconds", "peak_rss_kib"}`` to RESULT.json: wall seconds from just
before the child is created to its exit, and ``ru_maxrss`` (KiB) of the child alone (``wait4``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measured:
    """A finished child: exit status, wall seconds and its own peak RSS in KiB."""

    returncode: int
    seconds: float
    peak_rss_kib: int


def run_measured(
    argv: list[str],
    cwd: Path,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
) -> Measured:
    """Run ``argv`` in ``cwd`` through the launcher; stdout / stderr as for ``subprocess.run``."""
    with tempfile.TemporaryDirectory(prefix="stackrig-launch-") as tmp:
        result = Path(tmp) / "result.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        launcher = [sys.executable, "-m", "benchmarks.launch", str(result), "--", *argv]
        subprocess.run(launcher, cwd=cwd, stdout=stdout, stderr=stderr, env=env, check=False)
        if not result.is_file():
            raise RuntimeError(f"launcher failed to run {argv[0]}")
        data = json.loads(result.read_text())
    return Measured(int(data["returncode"]), float(data["seconds"]), int(data["peak_rss_kib"]))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m benchmarks.launch RESULT.json -- COMMAND...", file=sys.stderr)
        return 2
    result, command = Path(argv[0]), argv[2:]
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(command)
    except OSError as err:
        print(f"cannot run {command[0]}: {err}", file=sys.stderr)
        status_code, usage_kib = 127, 0
    else:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = status_code = os.waitstatus_to_exitcode(status)
        usage_kib = int(usage.ru_maxrss)
    seconds = time.perf_counter() - start
    result.write_text(
        json.dumps({"returncode": status_code, "seconds": seconds, "peak_rss_kib": usage_kib})
    )
    return status_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
