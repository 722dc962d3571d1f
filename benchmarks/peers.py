"""The reference pipeline we compare against: Hugin's ``align_image_stack`` then ``enfuse``.

What is run, in a scratch folder, on the frames in the order given (the first is the reference
geometry, as for our engine and the ground truth)::

    align_image_stack -m -a aligned_ FRAMES...
    enfuse --hard-mask --contrast-weight=1 --exposure-weight=0 --saturation-weight=0 \\
           -o enfuse.tif aligned_*.tif

What is measured:

* wall time of each command, from process creation to exit (``time.perf_counter`` around
  ``Popen`` + ``wait4``), including the aligned TIFFs written to and read from disk;
* peak RSS of each command: ``ru_maxrss`` (KiB) of the rusage ``os.wait4`` returns for it. Both
  are taken in a small launcher process (``benchmarks/launch.py``), because on Linux a child's
  ``ru_maxrss`` starts at the resident size of whatever forked it.

Installing the tools (Debian/Ubuntu): ``apt-get install enfuse hugin-tools``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.launch import run_measured

TOOLS = ("align_image_stack", "enfuse")
INSTALL_HINT = (
    "enfuse / align_image_stack not found: install them with "
    "`sudo apt-get install enfuse hugin-tools` (Debian/Ubuntu; Fedora: `dnf install enblend "
    "hugin`; macOS: `brew install enblend-enfuse hugin`) to compare against them"
)
ENFUSE_ARGS = (
    "--hard-mask",
    "--contrast-weight=1",
    "--exposure-weight=0",
    "--saturation-weight=0",
)


class PeerError(RuntimeError):
    """A peer tool is missing or failed; the message says which and why."""


@dataclass(frozen=True)
class CommandRun:
    """One child process: wall seconds and peak resident memory (KiB)."""

    argv0: str
    seconds: float
    peak_rss_kib: int


@dataclass(frozen=True)
class PeerRun:
    """align_image_stack + enfuse on one stack."""

    image: Path
    frames: int
    align: CommandRun
    enfuse: CommandRun

    @property
    def seconds(self) -> float:
        return self.align.seconds + self.enfuse.seconds

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / self.frames

    @property
    def peak_rss_kib(self) -> int:
        return max(self.align.peak_rss_kib, self.enfuse.peak_rss_kib)


def missing_tools() -> list[str]:
    """Names of the peer tools not on PATH."""
    return [t for t in TOOLS if shutil.which(t) is None]


def measured_run(argv: list[str], cwd: Path, log: Path) -> CommandRun:
    """Run ``argv`` in ``cwd`` (output to ``log``) through the small launcher of
    ``benchmarks.launch``; its wall time and its own peak RSS."""
    with log.open("wb") as out:
        run = run_measured(argv, cwd, stdout=out, stderr=subprocess.STDOUT)
    if run.returncode != 0:
        tail = log.read_text(errors="replace")[-800:]
        raise PeerError(f"{argv[0]} exited with {run.returncode}; last output:\n{tail}")
    return CommandRun(Path(argv[0]).name, run.seconds, run.peak_rss_kib)


def run_peers(frames: list[Path], workdir: Path) -> PeerRun:
    """Align and fuse ``frames`` with the Hugin tools in ``workdir`` (emptied first)."""
    missing = missing_tools()
    if missing:
        raise PeerError(INSTALL_HINT)
    if len(frames) < 2:
        raise PeerError("align_image_stack needs at least two frames")
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    sources = [str(Path(f).resolve()) for f in frames]
    aligned = measured_run(
        ["align_image_stack", "-m", "-a", "aligned_", *sources], workdir, workdir / "align.log"
    )
    tiffs = sorted(p.name for p in workdir.glob("aligned_*.tif"))
    if len(tiffs) != len(frames):
        raise PeerError(f"align_image_stack wrote {len(tiffs)} images for {len(frames)} frames")
    fused = measured_run(
        ["enfuse", *ENFUSE_ARGS, "-o", "enfuse.tif", *tiffs], workdir, workdir / "enfuse.log"
    )
    return PeerRun(workdir / "enfuse.tif", len(frames), aligned, fused)


def read_result(path: Path) -> np.ndarray:
    """The enfuse output as H x W x 3 RGB (uint8 or uint16), alpha dropped.

    Read with OpenCV, whose libtiff handles the LZW compression enfuse writes (tifffile would
    need the optional imagecodecs package)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PeerError(f"cannot read {path}")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------- focus-stack

FOCUS_STACK_HINT = (
    "focus-stack (github.com/PetteriAimonen/focus-stack) not found: it is not packaged by "
    "Debian, but builds against Debian's OpenCV: `apt-get install libopencv-dev`, clone it, then "
    "`benchmarks/build_focus_stack.sh CLONE` (puts it in bench-out/focus-stack/), or put "
    "`focus-stack` on PATH, or point $STACKRIG_FOCUS_STACK at it"
)
# Our engine and the ground truth keep the first frame's geometry and the whole frame, so the
# peer is asked for the same: reference 0 (its default is the middle frame), size kept.
FOCUS_STACK_ARGS = ("--reference=0", "--align-keep-size", "--threads=2")


def focus_stack_tool() -> Path | None:
    """The focus-stack binary: $STACKRIG_FOCUS_STACK, bench-out/focus-stack/, or PATH."""
    env = os.environ.get("STACKRIG_FOCUS_STACK")
    if env:
        return Path(env) if Path(env).is_file() else None
    built = Path(__file__).resolve().parents[1] / "bench-out" / "focus-stack" / "focus-stack"
    if built.is_file():
        return built
    found = shutil.which("focus-stack")
    return Path(found) if found else None


def run_focus_stack(frames: list[Path], workdir: Path) -> tuple[Path, CommandRun]:
    """focus-stack on ``frames`` (first frame the reference) in ``workdir`` (emptied first):
    the result (16-bit PNG for 16-bit input, else 8-bit PNG) and the run's figures."""
    tool = focus_stack_tool()
    if tool is None:
        raise PeerError(FOCUS_STACK_HINT)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    out = workdir / "focus-stack.png"
    sources = [str(Path(f).resolve()) for f in frames]
    argv = [str(tool), *FOCUS_STACK_ARGS, f"--output={out}", *sources]
    return out, measured_run(argv, workdir, workdir / "focus-stack.log")


def remove_intermediates(workdir: Path) -> None:
    """Delete the aligned TIFFs (large at 24 MP), keeping the result and logs."""
    for p in workdir.glob("aligned_*.tif"):
        p.unlink()
