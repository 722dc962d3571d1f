"""The one dtype policy: which sample value means full white.

Frames arrive as uint8, uint16 or float (0..1); everything the engine computes is float32 in
0..1. Every conversion divides by :func:`full_scale`, so a new sample type is added here only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def full_scale(dtype: DTypeLike) -> float:
    """The value of full white in ``dtype``: 255, 65535, or 1.0 for floating point."""
    kind = np.dtype(dtype)
    if kind in FULL_SCALE:
        return FULL_SCALE[kind]
    if kind.kind == "f":
        return 1.0
    # Signed or 32-bit integers have no agreed white level: refuse rather than guess.
    raise TypeError(f"{kind} samples are not supported: give uint8, uint16 or float in [0, 1]")


def levels(dtype: DTypeLike) -> np.ndarray:
    """Every value of an integer ``dtype`` as float32 0..1: the index of a lookup table."""
    top = full_scale(dtype)
    if np.dtype(dtype).kind == "f":
        raise TypeError(f"{np.dtype(dtype)} has no finite set of levels to tabulate")
    return np.arange(int(top) + 1, dtype=np.float32) / top
