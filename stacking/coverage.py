"""Coverage verdict (pure): does the stack reach the subject's front and back?

Focus only worsens past the ends of a stack, so any detail nearer than the first frame's focus
(or farther than the last frame's) is sharpest *in that end frame*: it piles up there. A stack
that covers its subject leaves its end frames little: nothing when it runs past the subject,
the end frame's own half-step slice when it starts right at it. An end frame that is the
sharpest for a noticeable share of the detail holds detail the stack never reached.

"First" and "last" are the order frames were added (the capture plan's order, so one end of the
rail and the other); rejected frames are skipped. Only textured pixels count: in flat areas
every frame sees the same noise and the winner is chance, or worse, the one frame never
resampled (the reference, which is also the first frame: resampling smooths noise, so the
reference's noise always looks sharpest). And only pixels every frame covers count: at the
border that magnification change uncovers, only the frames that see it can win.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stacking.report import Coverage

__all__ = ["Coverage", "clearly_sharpest", "judge", "textured"]

# Texture: the sharpest frame's focus must beat the stack's average (geometric mean) focus by
# this much in log focus (a factor 1.8). Flat areas get there only by noise and by the
# reference frame's unresampled noise: median 0.2..0.4, 95th percentile at most 0.51 at 320x240
# (the smallest window; 80 frames, noise sigma 4) and 0.36 at 1200x800; detail that the stack's
# defocus blurs away reaches 0.5..1.5.
TEXTURE_CONTRAST = 0.6
# Fewer pixels to judge by than this fraction of the image: too little detail to tell.
MIN_TEXTURED = 0.01
# Fewer frames: the ends are most of the stack and there are no neighbours to compare with.
MIN_FRAMES = 4
# An end stops short when its frame is the sharpest for at least this share of the judged
# detail. Stacks run past the subject leave their end frames under 0.5%; stacks starting right
# at the subject leave the end frame its own half-step slice (a near feature in focus there:
# 2.5..3.5% on the synthetic stacks, more when that feature is large); stacks missing a third
# of the subject give 5..40%. A twentieth of the detail is a patch an operator sees blurred.
END_SHARE = 0.05
# An end frame counts only where it is clearly the sharpest: its focus leads every other
# frame's by this much in log focus (6%). Where it ties with its neighbour the detail is in
# focus between the two, inside the stack; at fine steps frames next to an in-focus detail
# differ by about 5% (the shared 1600 px stacks), and resampling softens every frame but the
# reference by a few %, which alone lets the first frame win near-ties. Detail beyond an end
# loses 15..20% per step there, so it still counts.
END_LEAD = 0.06
# Frames next to an end whose mean share is the detail per step there, for the estimate:
# enough to smooth one frame's luck, few enough to stay local to that end of the subject.
NEIGHBOURS = 3


def textured(contrast: np.ndarray, sharpness: float) -> np.ndarray:
    """Boolean mask of the pixels with detail that defocus changes over the stack.

    ``contrast`` is the peak minus mean activity per pixel, in activity units
    (``sharpness * log(focus)``, see :mod:`stacking.accumulate`).
    """
    return np.asarray(contrast) >= TEXTURE_CONTRAST * sharpness


def clearly_sharpest(lead: np.ndarray, sharpness: float) -> np.ndarray:
    """Boolean mask of where a frame leads every other by :data:`END_LEAD` or more.

    ``lead`` is that frame's activity minus the best of the others', in activity units.
    """
    return np.asarray(lead) >= END_LEAD * sharpness


def judge(
    index: np.ndarray,
    mask: np.ndarray,
    order: Sequence[int],
    first_clear: np.ndarray | None = None,
    last_clear: np.ndarray | None = None,
) -> Coverage:
    """The coverage verdict from a best-frame index map and the pixels to judge by.

    ``index`` holds the index of the sharpest frame per pixel, ``mask`` (same shape, bool) the
    pixels that count (textured, covered by every frame), and ``order`` the indices of the
    frames fused, in the order they were added. ``first_clear`` and ``last_clear`` (bool, same
    shape), where given, say where the first or the last frame is clearly the sharpest
    (:func:`clearly_sharpest`); its other wins are near-ties with its neighbour and count for
    the neighbour.
    """
    frames = len(order)
    if frames < MIN_FRAMES:
        why = f"too few frames to judge coverage yet ({frames}, {MIN_FRAMES} needed)"
        return _unjudged(frames, 0.0, why)
    mask = np.asarray(mask, bool)
    area = int(mask.size)
    picked = np.asarray(index)[mask].astype(np.intp, copy=False)
    counts = np.bincount(picked, minlength=max(order) + 1)[list(order)]
    for end, inner, clear in ((0, 1, first_clear), (-1, -2, last_clear)):
        if clear is not None:
            tied = np.count_nonzero(mask & (index == order[end]) & ~np.asarray(clear, bool))
            counts[end] -= tied
            counts[inner] += tied
    total = int(counts.sum())
    texture = total / area if area else 0.0
    if total == 0 or texture < MIN_TEXTURED:
        return _unjudged(frames, texture, "too little detail to judge coverage")
    shares = counts / total
    near = min(NEIGHBOURS, (frames - 1) // 2)
    first = _extension(float(shares[0]), shares[1 : 1 + near], frames)
    last = _extension(float(shares[-1]), shares[-1 - near : -1], frames)
    return Coverage(
        frames=frames,
        textured=round(texture, 4),
        first_share=round(float(shares[0]), 4),
        last_share=round(float(shares[-1]), 4),
        extend_first=first,
        extend_last=last,
        judged=True,
        verdict=_verdict(float(shares[0]), float(shares[-1]), first, last),
    )


def _extension(end: float, neighbours: np.ndarray, frames: int) -> int:
    """Steps to add at an end whose frame wins ``end`` of the detail; 0 when that end is fine.

    Of what the end frame wins, half a step's slice of subject is its own (the slice on its far
    side would be empty in a covered stack); the rest lies beyond the end, and divided by the
    detail per step there gives the steps missing. That density is unseen, so it is taken from
    the frames next to the end, but no more than the stack's average: subjects thin out towards
    their front and back, and an estimate too short costs another run where one too long costs
    a few frames. And no less than half the average: detail beyond an empty stretch (a detached
    near part) says nothing about its depth. At most the stack's own length: extend, then judge
    again.
    """
    if end < END_SHARE:
        return 0
    average = 1.0 / frames
    per_step = float(np.clip(np.mean(neighbours), average / 2, average))
    return int(min(frames, max(1, round((end - per_step / 2) / per_step))))


def _percent(share: float) -> str:
    # One decimal under 10%: near the threshold "5%" would not say which side it is on.
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def _verdict(first: float, last: float, extend_first: int, extend_last: int) -> str:
    def steps(n: int) -> str:
        return f"{n} step{'s' if n != 1 else ''}"

    if extend_first and extend_last:
        return (
            f"the first frame is still the sharpest for {_percent(first)} of the detail and the "
            f"last for {_percent(last)}: the stack probably stops short at both ends; extend it "
            f"by about {steps(extend_first)} before the first frame and {steps(extend_last)} "
            "after the last"
        )
    for name, share, n in (("first", first, extend_first), ("last", last, extend_last)):
        if n:
            return (
                f"the {name} frame is still the sharpest for {_percent(share)} of the detail: the "
                f"stack probably stops short at that end; extend it there by about {steps(n)}"
            )
    return (
        f"covered: the end frames are the sharpest for only {_percent(first)} (first) and "
        f"{_percent(last)} (last) of the detail"
    )


def _unjudged(frames: int, texture: float, why: str) -> Coverage:
    return Coverage(
        frames=frames,
        textured=round(texture, 4),
        first_share=0.0,
        last_share=0.0,
        extend_first=0,
        extend_last=0,
        judged=False,
        verdict=why,
    )
