"""Quality on the suite (``benchmarks/suite.py``): our methods next to enfuse and focus-stack.

``python -m benchmarks.quality [--cases micro_noisy,breathing_rev] [--methods pyramid]
[--skip-peers] [--json OUT]``

Per case and tool, against the case's truth, in the truth's geometry (a result made in another
frame's geometry is resampled into it with that frame's known matrix), inside the case's border
(at least 5 % per side, more where the narrowest frame sees less):

* PSNR / SSIM as in ``benchmarks/metrics.py``;
* edges: PSNR within the blur radius of a depth step (``metrics.halo_zone``), where halos and
  doubled edges live;
* detail: the share of the truth's fine detail the result carries (``metrics.detail``);
* vs best frame: that detail over the best single frame's (each frame resampled into the truth's
  geometry, brightness matched to the truth): below 1.00 the stack is softer than a frame;
* warned: whether the engine's own check called its result softer than its sharpest frame.

Then, per case, our default (pyramid) minus the best peer, and each reversed case minus its
forward twin.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks import metrics, peers, suite
from benchmarks.suite import Case
from stacking import geometry

Box = tuple[int, int, int, int]  # x, y, w, h
REPO = Path(__file__).resolve().parents[1]
BENCH_OUT = REPO / "bench-out"
METHODS = ("pyramid", "weighted", "depthmap")
DEFAULT = "pyramid"


@dataclass
class Score:
    case: str
    tool: str
    used: str
    psnr: float
    ssim: float
    edges: float | None
    detail: float
    vs_best: float
    warned: bool | None
    seconds: float


class Scorer:
    """Scores images of one case: the truth, its crop, halo zone and best single frame, once."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.truth = case.truth()
        self.crop = lambda image: metrics.central_crop(image, case.border)
        depth = case.depth()
        self.zone = None
        if depth is not None:
            zone = self.crop(metrics.halo_zone(depth, case.blur_max_px))
            self.zone = zone if zone.any() else None
        self.best_frame = max(self._frame_detail(i) for i in range(len(case.frames)))

    def _frame_detail(self, i: int) -> float:
        frame = self.case.to_rgb8(self.case.frame(i))
        frame = warp_to_truth(frame, self.case.matrices[i])
        crop, truth = self.crop(frame).astype(np.float32), self.crop(self.truth)
        crop *= np.float32(truth.mean() / max(float(crop.mean()), 1e-6))  # flicker aside
        matched = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
        return metrics.detail(matched, truth)

    def score(self, tool: str, image: np.ndarray, used: str, seconds: float,
              warned: bool | None = None, box: Box | None = None) -> Score:  # fmt: skip
        """``image``: a result in the first given frame's geometry, as read or as returned,
        cropped to ``box`` (x, y, w, h) of that frame when given."""
        # What was cropped lies outside the area every frame sees, which holds the scored one:
        # were a crop ever to cut into it, the repeated edges would cost PSNR there.
        rgb8 = geometry.uncrop(self.case.to_rgb8(self.case.units(image)), box, self.truth.shape)
        rgb8 = warp_to_truth(rgb8, self.case.reference)
        if rgb8.shape != self.truth.shape:
            raise ValueError(f"{tool}: result {rgb8.shape} against truth {self.truth.shape}")
        psnr, ssim = metrics.score(rgb8, self.truth, self.case.border)
        result, truth = self.crop(rgb8), self.crop(self.truth)
        edges = None if self.zone is None else metrics.masked_psnr(result, truth, self.zone)
        detail = metrics.detail(result, truth)
        return Score(self.case.name, tool, used, psnr, ssim, edges, detail,
                     detail / self.best_frame, warned, seconds)  # fmt: skip


def warp_to_truth(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` in the geometry of a frame whose truth -> frame matrix is ``matrix``,
    resampled into the truth's geometry (a no-op for the identity)."""
    if np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]):
        return image
    h, w = image.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------------------------- tools


def run_engine(case: Case, method: str, scorer: Scorer) -> Score:
    from stacking.engine import StackEngine, StackSettings
    from stacking.io import read_image

    start = time.perf_counter()
    engine = StackEngine(StackSettings(method=method))
    used = sum(engine.add(read_image(f).pixels, f.name).accepted for f in case.frames)
    result = engine.finalize()
    seconds = time.perf_counter() - start
    used_text = f"{used}/{len(case.frames)}"
    warned = result.softness is not None
    return scorer.score(method, result.image, used_text, seconds, warned, result.crop)


def run_peers(case: Case, scorer: Scorer) -> list[Score]:
    """enfuse and focus-stack on the case, each reported and left out when it fails."""
    scores = []
    work = BENCH_OUT / "peers" / case.name
    try:
        start = time.perf_counter()
        run = peers.run_peers(case.frames, work / "enfuse")
        image = peers.read_result(run.image)
        scores.append(scorer.score("enfuse", image, "-", time.perf_counter() - start))
        peers.remove_intermediates(work / "enfuse")
    except (peers.PeerError, ValueError) as err:
        print(f"  {case.name}: enfuse: {err}")
    try:
        start = time.perf_counter()
        out, _ = peers.run_focus_stack(case.frames, work / "focus-stack")
        image = peers.read_result(out)
        scores.append(scorer.score("focus-stack", image, "-", time.perf_counter() - start))
    except (peers.PeerError, ValueError) as err:
        print(f"  {case.name}: focus-stack: {err}")
    return scores


# --------------------------------------------------------------------------------- output


def table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Plain fixed-width table: the first ``left`` columns left-aligned, the others right."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted, or "-" when there is none (or it is not finite)."""
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def print_scores(scores: list[Score]) -> None:
    headers = ["case", "tool", "used", "PSNR", "SSIM", "edges", "detail", "vs best frame",
               "warned", "s"]  # fmt: skip
    rows = [
        [s.case, s.tool, s.used, fmt(s.psnr, ".2f"), fmt(s.ssim, ".4f"), fmt(s.edges, ".2f"),
         fmt(s.detail, ".3f"), fmt(s.vs_best, ".2f"),
         "-" if s.warned is None else ("yes" if s.warned else "no"), fmt(s.seconds, ".1f")]
        for s in scores
    ]  # fmt: skip
    print(table(headers, rows, left=2))


def print_verdicts(scores: list[Score]) -> None:
    by_case: dict[str, dict[str, Score]] = {}
    for s in scores:
        by_case.setdefault(s.case, {})[s.tool] = s
    rows = []
    for case, tools in by_case.items():
        ours = tools.get(DEFAULT)
        peer = [t for name, t in tools.items() if name in ("enfuse", "focus-stack")]
        if ours is None:
            continue
        best_p = max(peer, key=lambda t: t.psnr) if peer else None
        best_s = max(peer, key=lambda t: t.ssim) if peer else None
        rows.append([
            case, DEFAULT,
            fmt(ours.psnr - best_p.psnr, "+.2f") if best_p else "-",
            best_p.tool if best_p else "-",
            fmt(ours.ssim - best_s.ssim, "+.4f") if best_s else "-",
            fmt(ours.vs_best, ".2f"),
        ])  # fmt: skip
    print(table(["case", "ours", "dPSNR vs best peer", "peer", "dSSIM vs best", "vs best frame"],
                rows, left=2))  # fmt: skip
    for case, tools in by_case.items():
        if case.endswith("_rev") and case[:-4] + "_fwd" in by_case:
            twin = by_case[case[:-4] + "_fwd"]
            deltas = [
                f"{name} {tools[name].psnr - twin[name].psnr:+.2f} dB"
                for name in tools
                if name in twin
            ]
            print(f"  {case} minus {case[:-4]}_fwd: " + ", ".join(deltas))


# ----------------------------------------------------------------------------------- main


def evaluate(cases: list[Case], methods: list[str], use_peers: bool) -> list[Score]:
    scores: list[Score] = []
    for case in cases:
        scorer = Scorer(case)
        case_scores = [run_engine(case, m, scorer) for m in methods]
        if use_peers:
            case_scores += run_peers(case, scorer)
        print(f"  {case.name}: " + ", ".join(f"{s.tool} {s.psnr:.2f}" for s in case_scores))
        scores += case_scores
    return scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.split("\n")[0]
    )
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--json", type=Path, help="also write the scores here")
    args = p.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",")] if args.cases else None
    shared = [
        c for c in suite.shared_cases(suite.shared_root()) if names is None or c.name in names
    ]
    classes = suite.class_cases(names)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.skip_peers and peers.missing_tools():
        print(peers.INSTALL_HINT)
    if not args.skip_peers and peers.focus_stack_tool() is None:
        print(peers.FOCUS_STACK_HINT)
    print("== Quality vs ground truth ==")
    scores = evaluate(shared + classes, methods, not args.skip_peers)
    print_scores(scores)
    print()
    print_verdicts(scores)
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in scores], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
