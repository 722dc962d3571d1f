"""The quality suite: the shared stacks plus generated classes the engine was not tuned on.

Each case is a folder of frames with a known all-in-focus truth, the order the frames are given
in, and how to score in the truth's geometry. Generated classes (``benchmarks.synth``) are
cached under ``bench-out/classes/``, keyed by their parameters, and made on first use.

Classes (1600x1067, the shared stacks' size, unless said):

* ``micro_noisy``: a microscope: stained tissue, no focus breathing, twice the shared stacks'
  sensor noise, defocus blur up to 1.2 % of the diagonal, 30 frames.
* ``mono12``: a mono scientific camera, linear 12-bit values in 16-bit TIFFs, a dim specimen
  (white at 35 % of the 12-bit range), shot and read noise, 20 frames.
* ``breathing_fwd`` / ``breathing_rev``: 8.6 % magnification change, given widest view first
  and then narrowest first (the same frames reversed).
* ``flicker_dark``: exposure flicker of +-15 % with a first frame 15 % dark.
* ``moving``: a round part of the specimen creeps 4 px over the stack.
* ``long60``: 60 frames.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from benchmarks import synth
from benchmarks.synth import SynthParams

REPO = Path(__file__).resolve().parents[1]
CLASS_ROOT = REPO / "bench-out" / "classes"
BORDER = 0.05  # the shared stacks' scoring border: 5 % per side (benchmarks/metrics.py)


@dataclass(frozen=True)
class StackClass:
    name: str
    params: SynthParams
    reverse: bool = False  # give the frames last to first


_MICRO = SynthParams(
    texture="tissue",
    frames=30,
    breathing=0.0,
    shift=2.0,
    rotation=0.05,
    flicker=0.01,
    noise=2.0,
    read_noise=0.0014,
    max_blur=0.012 * math.hypot(1600, 1067) / 1600,
    seed=21,
)
_BREATHING = SynthParams(texture="mix", frames=20, breathing=0.086, seed=23)
CLASSES = (
    StackClass("micro_noisy", _MICRO),
    StackClass("mono12", replace(_MICRO, frames=20, sensor="mono12", max_blur=0.008, seed=22)),
    StackClass("breathing_fwd", _BREATHING),
    StackClass("breathing_rev", _BREATHING, reverse=True),
    StackClass(
        "flicker_dark",
        SynthParams(texture="photos", frames=20, flicker=0.15, first_gain=0.85, seed=24),
    ),
    StackClass("moving", SynthParams(texture="leaves", frames=20, motion=4.0, seed=25)),
    StackClass("long60", SynthParams(texture="procedural", frames=60, seed=26)),
)


@dataclass(frozen=True)
class Case:
    """One stack to score: frames in the order given, its truth and how to compare."""

    name: str
    folder: Path
    frames: list[Path]
    matrices: list[np.ndarray]  # per given frame: truth pixel -> frame pixel (2x3)
    mono: bool
    white: float  # the truth's white level: 255 for 8-bit colour, DN for mono
    border: float  # scoring border per side, inside the narrowest frame's view
    blur_max_px: float

    @property
    def reference(self) -> np.ndarray:
        """The first given frame's matrix: results come in its geometry."""
        return self.matrices[0]

    def truth(self) -> np.ndarray:
        """The truth as RGB uint8 (mono: grey in all three, its white at 255)."""
        image = cv2.imread(str(self.folder / "ground_truth.png"), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise OSError(f"cannot read {self.folder / 'ground_truth.png'}")
        return self.to_rgb8(image if self.mono else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    def frame(self, i: int) -> np.ndarray:
        """Given frame ``i`` in this case's units (RGB, or grey for mono)."""
        image = cv2.imread(str(self.frames[i]), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise OSError(f"cannot read {self.frames[i]}")
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
        return self.units(image)

    def depth(self) -> np.ndarray | None:
        path = self.folder / "depth.npy"
        return np.load(path) if path.is_file() else None

    def to_rgb8(self, values: np.ndarray) -> np.ndarray:
        """``values`` in this case's units (0..255 for colour, DN for mono; any dtype, grey or
        RGB, alpha dropped) as RGB uint8 on the truth's scale (its white at 255)."""
        if values.ndim == 3 and values.shape[2] > 3:
            values = values[..., :3]
        if self.mono and values.ndim == 3:
            values = values[..., 0]
        scaled = values.astype(np.float32) * np.float32(255.0 / self.white)
        out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.repeat(out[..., None], 3, axis=2) if out.ndim == 2 else out

    def units(self, image: np.ndarray) -> np.ndarray:
        """A result or frame as read (float 0..1 from the engine, or uint8 / uint16 pixels from
        a file) in this case's units."""
        if np.issubdtype(image.dtype, np.floating):  # the engine's 0..1 of the input's container
            return image * np.float32(65535.0 if self.mono else 255.0)
        if image.dtype == np.uint16 and not self.mono:
            return image.astype(np.float32) / np.float32(257.0)
        if image.dtype == np.uint8 and self.mono:  # a tool that cut the 16-bit frames to 8
            return image.astype(np.float32) * np.float32(257.0)
        return image.astype(np.float32)


def shared_root() -> Path:
    """``$STACKRIG_SHARED`` or ``../shared`` relative to the repository root."""
    env = os.environ.get("STACKRIG_SHARED")
    return Path(env) if env else (REPO / ".." / "shared").resolve()


def shared_cases(root: Path) -> list[Case]:
    folder = root / "data" / "synthetic"
    if not folder.is_dir():
        return []
    return [
        _case(p.name, p, reverse=False)
        for p in sorted(folder.iterdir())
        if (p / "meta.json").is_file() and (p / "ground_truth.png").is_file()
    ]


def class_cases(names: list[str] | None = None, progress=print) -> list[Case]:
    """The generated classes (all, or those named), generated on first use."""
    chosen = [c for c in CLASSES if names is None or c.name in names]
    return [_case(c.name, generated(c.params, progress), c.reverse) for c in chosen]


def generated(params: SynthParams, progress=print) -> Path:
    key = json.dumps({"v": synth.VERSION, **asdict(params)}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    out = CLASS_ROOT / f"{params.texture}-n{params.frames}-{digest}"
    if (out / "meta.json").is_file():  # written last
        return out
    progress(f"  generating {out.name} ({params.frames} frames) ...")
    tmp = out.with_name(out.name + f".part{os.getpid()}")
    synth.generate(params, tmp)
    tmp.rename(out)
    return out


def _case(name: str, folder: Path, reverse: bool) -> Case:
    meta = json.loads((folder / "meta.json").read_text())
    entries = meta["frames"][::-1] if reverse else meta["frames"]
    frames = [folder / f["file"] for f in entries]
    matrices = [np.asarray(f["M"], np.float64) for f in entries]
    mono = meta.get("sensor") == "mono12"
    zoom = max(abs(float(np.linalg.det(m[:, :2]))) ** 0.5 for m in matrices)
    # Scored where every frame sees the scene, whichever frame is the reference: the narrowest
    # view's margin plus the jitter (a few px); the shared 5 % already covers 8.6 % breathing.
    margin = (1 - 1 / zoom) / 2 + 4.0 / min(meta["width"], meta["height"])
    border = max(BORDER, margin)
    return Case(
        name=name,
        folder=folder,
        frames=frames,
        matrices=matrices,
        mono=mono,
        white=float(meta["white_dn"]) if mono else 255.0,
        border=border,
        blur_max_px=float(meta["blur_radius_max_px"]),
    )
