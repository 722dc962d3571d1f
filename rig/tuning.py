"""Process-wide tuning for stacking large frames."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of returning it to the OS and mapping it anew.

    Every 24 MP plane (96 MB) is above glibc's mmap threshold, so by default each one is a fresh
    mapping whose pages fault in on first touch: measured on the 2-core reference machine, that
    was a third of the run (system time 13.6 s of 35 s for 12 frames). Served from a heap that
    keeps freed blocks, the same buffers are reused frame after frame. One arena for all
    threads, so the frame the reader thread decodes lands in memory the engine just freed
    (page faults for 12 frames: 253 k -> 57 k). Returns False where this is not glibc
    (nothing changes there). Call it before any large allocation.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    results = [
        mallopt(_M_ARENA_MAX, 1),
        mallopt(_M_MMAP_MAX, 0),
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1),
    ]
    return all(r == 1 for r in results)


def calm_thread_pool() -> None:
    """Let OpenCV's idle worker threads sleep instead of spinning on sched_yield.

    Between OpenCV calls the engine runs Python and numpy, and the reader thread decodes the
    next frame; spinning workers stole that CPU (148 k sched_yield calls, 5.4 s of system time
    for 12 frames at 24 MP; 1.23 -> 0.90 s per frame). Must run before OpenCV's first parallel
    call; an explicit setting in the environment wins.
    """
    os.environ.setdefault("OPENCV_THREAD_POOL_ACTIVE_WAIT_WORKER", "0")
    os.environ.setdefault("OPENCV_THREAD_POOL_ACTIVE_WAIT_MAIN", "0")


def no_huge_page_hints() -> None:
    """Stop numpy asking for transparent huge pages on its large arrays.

    Where the kernel compacts memory on demand for such hints (THP ``defrag=madvise``, as on the
    reference machine), every first touch of a new 96 MB plane stalls: the first 24 MP frame
    took 4.5 s instead of 1.8 s.
    """
    import numpy as np

    hint = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
    if hint is not None:
        hint(False)


def tune_process() -> None:
    """Everything above, for a process about to stack large frames."""
    calm_thread_pool()
    keep_freed_memory()
    no_huge_page_hints()
