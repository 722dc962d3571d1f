"""Element-wise image work split into row bands, one per core.

OpenCV runs its filters (pyramids, warps, resizes) on every core, but its per-pixel arithmetic
(add, multiply, exp, compare, ...) on one. That arithmetic is most of a 24 MP frame's fold, and
every call releases the GIL, so bands of rows on a few threads finish it in about half the
time on two cores. Results are bit-identical: every pixel sees the same operations.

The number of bands follows ``cv2.getNumThreads()``, so a process that caps OpenCV's threads
(a batch worker sharing the machine) caps this too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

# Below this many pixels a band's thread hand-off costs more than it saves.
_SMALLEST = 1 << 19

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), "bands")
        return _pool


def count(pixels: int) -> int:
    """How many bands an image of ``pixels`` is split into."""
    if pixels < 2 * _SMALLEST:
        return 1
    return max(1, min(cv2.getNumThreads(), os.cpu_count() or 1, pixels // _SMALLEST))


def run(work: Callable[..., object], *arrays: np.ndarray) -> None:
    """``work(*bands)`` over matching row bands of ``arrays`` (all of the same height).

    ``work`` writes its results into the bands it is given (views of the caller's arrays).
    The calling thread takes the first band; the rest go to the pool.
    """
    height = arrays[0].shape[0]
    n = min(count(arrays[0].size), height)
    if n <= 1:
        work(*arrays)
        return
    cuts = [height * i // n for i in range(n + 1)]
    pool = _executor()
    others: list[Future[object]] = [
        pool.submit(work, *(a[cuts[i] : cuts[i + 1]] for a in arrays)) for i in range(1, n)
    ]
    try:
        work(*(a[cuts[0] : cuts[1]] for a in arrays))
    finally:
        for future in others:
            future.result()  # every band done before the caller reads; re-raises a failure
