"""Test helpers (not fixtures): scenes with known truth, built in memory, and what a camera
does to them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"


def textured_scene(h: int = 240, w: int = 320, seed: int = 1) -> np.ndarray:
    """A float32 RGB scene with detail at several scales (no flat areas)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for scale in (3, 8, 20, 45):
        noise = rng.random((h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) / 4
    for _ in range(25):
        c = tuple(int(v) for v in rng.integers(0, [w, h]))
        cv2.circle(img, c, int(rng.integers(4, 25)), rng.random(3).tolist(), -1)
    return np.clip(img, 0, 1)


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def similarity(
    scale: float, degrees: float, tx: float, ty: float, centre: tuple[float, float]
) -> np.ndarray:
    """3x3 similarity about ``centre``, mapping reference -> frame pixel coordinates."""
    m = cv2.getRotationMatrix2D(centre, degrees, scale)
    m[:, 2] += (tx, ty)
    return np.vstack([m, [0, 0, 1]])


def render(scene: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The frame a camera sees when ``transform`` maps reference -> frame coordinates."""
    h, w = scene.shape[:2]
    return cv2.warpAffine(
        scene, transform[:2], (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )


def focus_stack(scene: np.ndarray, frames: int = 5) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames that each have one vertical band in focus (blurred elsewhere), plus the band map."""
    h, w = scene.shape[:2]
    band = np.minimum((np.arange(w) * frames) // w, frames - 1)
    band_map = np.broadcast_to(band, (h, w))
    out = []
    for i in range(frames):
        blurred = cv2.GaussianBlur(scene, (0, 0), 4.0)
        frame = np.where((band_map == i)[..., None], scene, blurred)
        out.append(frame.astype(np.float32))
    return out, band_map


def expose(encoded: np.ndarray, gain: float | np.ndarray) -> np.ndarray:
    """Change exposure the way a camera does: a gain on linear light, then sRGB encoding."""
    x = np.clip(encoded, 0, 1).astype(np.float64)
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * gain
    linear = np.clip(linear, 0, 1)
    out = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return out.astype(np.float32)


def stackrig_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``stackrig ARGS`` in a child that Ctrl-C reaches (a background shell ignores SIGINT,
    and its children inherit that), output and errors together on stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "rig.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
