"""A subject on the simulated rig: what the camera sees with the focus at any rail position.

The scene (``scene.py``) has depth 0 (near) .. 1 (far); on the rail that is ``near_um`` ..
``near_um + depth_um``. With the focus at position z, a pixel of depth d is blurred by
``max_blur * width * |d - f|`` px (f = z mapped the same way), the view magnifies as the camera
moves in (focus breathing), the rig shakes a little, and the sensor adds noise. Its all-in-focus
image and depth are known, so a session's stack can be scored against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rig.simrig.render import (
    DefocusRenderer,
    blur_levels,
    encode_frame,
    linear_to_srgb8,
    padded_matrix,
    scene_linear,
)
from rig.simrig.scene import make_scene


@dataclass(frozen=True)
class SubjectSettings:
    width: int = 1200
    height: int = 800
    texture: str = "mix"
    seed: int = 1
    near_um: float = 0.0  # rail position that focuses on the nearest point
    depth_um: float = 4000.0  # from the nearest to the farthest point, along the rail
    max_blur: float = 0.008  # defocus radius at a full depth away, as a fraction of the width
    breathing: float = 0.03  # magnification gained from the near to the far end
    vibration_px: float = 1.0  # random shift of each shot, up to this many px
    noise: float = 1.0  # sensor noise, sigma in 8-bit units
    lens_sigma: float = 0.7  # constant lens blur, px


class Subject:
    """Renders frames for rail positions; deterministic for a given seed and shot number."""

    def __init__(self, settings: SubjectSettings | None = None) -> None:
        s = self.settings = settings or SubjectSettings()
        if s.width < 64 or s.height < 64 or s.depth_um <= 0:
            raise ValueError(f"{s}: the frame must be at least 64 px and the depth > 0")
        radius = s.max_blur * s.width
        # Room for blur, breathing (the far end shows less, so the near end needs margin) and shake.
        self.pad = max(40, int(radius + s.vibration_px + s.breathing * s.width / 2 + 8))
        scene = make_scene(s.width, s.height, self.pad, s.texture, np.random.default_rng(s.seed))
        self._depth = scene.depth
        linear = scene_linear(scene, s.lens_sigma)
        self._renderer = DefocusRenderer(linear, scene.depth, blur_levels(radius), radius)
        p = self.pad
        self._sharp = linear_to_srgb8(linear[p : p + s.height, p : p + s.width])

    def focus_of(self, position_um: float) -> float:
        """The scene depth (0 near .. 1 far) in focus at ``position_um``."""
        s = self.settings
        return (position_um - s.near_um) / s.depth_um

    def frame(self, position_um: float, shot: int = 0) -> np.ndarray:
        """The frame (uint8 RGB) shot number ``shot`` sees with the focus at ``position_um``."""
        s = self.settings
        f = self.focus_of(position_um)
        rng = np.random.default_rng((s.seed, shot))
        scale = 1.0 + s.breathing * float(np.clip(f, 0.0, 1.0))
        tx, ty = rng.uniform(-s.vibration_px, s.vibration_px, 2)
        cx, cy = (s.width - 1) / 2, (s.height - 1) / 2
        m = [[scale, 0.0, cx - scale * cx + tx], [0.0, scale, cy - scale * cy + ty]]
        linear = self._renderer.render(f)
        matrix = padded_matrix(m, self.pad)
        return encode_frame(linear, matrix, (s.width, s.height), 1.0, s.noise, 0.0, rng)

    def all_in_focus(self) -> np.ndarray:
        """The ground truth at the near end's magnification (uint8 RGB)."""
        return self._sharp

    def depth_um(self) -> np.ndarray:
        """Rail position of best focus for every pixel of :meth:`all_in_focus` (float32)."""
        s, p = self.settings, self.pad
        depth = self._depth[p : p + s.height, p : p + s.width]
        return (s.near_um + depth * s.depth_um).astype(np.float32)
