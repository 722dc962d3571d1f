"""stackrig benchmarks: quality, speed and memory, next to align_image_stack + enfuse.

``python -m benchmarks.run [--quick] [--skip-peers] [--size 6000x4000] [--frames 30]``

1. **Quality**: the suite of ``benchmarks/quality.py``: every stack under
   ``$STACKRIG_SHARED/data/synthetic`` (default ``../shared`` next to the repository) and the
   generated classes of ``benchmarks/suite.py`` (noisy microscope, mono 12-bit, strong breathing
   both ways, flicker with a dark first frame, a moving specimen, 60 frames), fused by each
   method and by enfuse and focus-stack; PSNR / SSIM / edges / detail against the truth.
2. **Speed**: a ``--size`` stack of ``--frames`` frames is generated once with
   ``benchmarks/synth.py`` (cached under ``bench-out/``). A fresh child process per method
   (``benchmarks/engine_child.py``) stacks it the way ``stackrig stack`` does: process tuned,
   frames read ahead on a thread and added one at a time. "s/frame" is wall time to the last
   ``add`` / frames (reading included); "last frame -> result" is from the last frame being
   decoded to ``finalize`` returning. enfuse's s/frame is the wall time of align_image_stack +
   enfuse on the same frames, divided by their number.
3. **Memory**: peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss`` in the child, everything
   included: interpreter, libraries, decoded frame, fusion state) for N and 2N frames, each in a
   fresh process started from a small launcher (see ``benchmarks/launch.py`` for why), and their
   ratio (1.0 means memory does not grow with the stack).

``--quick`` shrinks parts 2 and 3 to 1600x1067 and 10 / 20 frames (unless --size / --frames are
given); quality is always measured on the full shared stacks.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks import metrics, peers, suite, synth
from benchmarks import quality as quality_suite
from benchmarks.launch import run_measured
from benchmarks.quality import fmt, table
from stacking import geometry

REPO = Path(__file__).resolve().parents[1]
BENCH_OUT = REPO / "bench-out"
METHODS = ("pyramid", "weighted", "depthmap")


# ----------------------------------------------------------------------------------- stacks


shared_root = suite.shared_root


def stack_frames(stack: Path) -> list[Path]:
    """Frame paths in capture order, as listed by the stack's meta.json."""
    meta = json.loads((stack / "meta.json").read_text())
    return [stack / f["file"] for f in meta["frames"]]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def generated_stack(width: int, height: int, frames: int, texture: str, seed: int) -> Path:
    """A synthetic stack of this size under bench-out/, generated on first use (in a child)."""
    out = BENCH_OUT / "synth" / f"{width}x{height}-n{frames}-{texture}-s{seed}"
    meta = out / "meta.json"  # written last: its presence means the stack is complete
    if meta.is_file():
        made_by = json.loads(meta.read_text()).get("generator")
        if made_by == f"benchmarks.synth v{synth.VERSION}" and all(
            p.is_file() for p in stack_frames(out)
        ):
            return out
    print(f"  generating {width}x{height} x {frames} ({texture}, seed {seed}) in {out} ...")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "benchmarks.synth", str(out), "--width", str(width),
         "--height", str(height), "--frames", str(frames), "--texture", texture,
         "--seed", str(seed), "-q"],
        check=True, cwd=REPO,
    )  # fmt: skip
    print(f"  generated in {time.perf_counter() - start:.0f} s")
    return out


# ----------------------------------------------------------------------------------- engine


def run_child(stack: Path, method: str, limit: int, save: Path | None = None) -> dict:
    """Run ``benchmarks.engine_child`` in a fresh interpreter, started from the small launcher
    of ``benchmarks.launch`` so that its ``ru_maxrss`` is not floored at this process's size."""
    argv = [sys.executable, "-m", "benchmarks.engine_child", str(stack), method, str(limit)]
    if save is not None:
        argv.append(str(save))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        run = run_measured(argv, REPO, stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if run.returncode != 0:
        raise RuntimeError(f"engine child failed ({method}, {limit} frames):\n{stderr[-1500:]}")
    return json.loads(stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------- output


def mib(kib: float) -> float:
    return kib / 1024


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@dataclass
class PeerFigures:
    psnr: float | None = None
    ssim: float | None = None
    seconds_per_frame: float | None = None
    peak_rss_kib: int | None = None


def run_peer(frames: list[Path], workdir: Path, truth: np.ndarray | None) -> PeerFigures | None:
    """enfuse figures for ``frames`` (scored against ``truth`` when given), None on failure."""
    try:
        run = peers.run_peers(frames, workdir)
    except peers.PeerError as err:
        print(f"  enfuse: {err}")
        return None
    print(
        f"  enfuse on {run.frames} frames: align_image_stack {run.align.seconds:.1f} s "
        f"({mib(run.align.peak_rss_kib):.0f} MiB), enfuse {run.enfuse.seconds:.1f} s "
        f"({mib(run.enfuse.peak_rss_kib):.0f} MiB)"
    )
    figures = PeerFigures(seconds_per_frame=run.seconds_per_frame, peak_rss_kib=run.peak_rss_kib)
    if truth is not None:
        figures.psnr, figures.ssim = metrics.score(peers.read_result(run.image), truth)
    peers.remove_intermediates(workdir)
    return figures


# ------------------------------------------------------------------------------- sections


def quality(methods: list[str], use_peers: bool) -> None:
    """The quality suite (``benchmarks/quality.py``): the shared stacks and the generated
    classes, next to enfuse and focus-stack."""
    print("\n== 1. Quality vs ground truth (PSNR dB / SSIM, central 90 % or less, 8-bit) ==")
    cases = suite.shared_cases(shared_root()) + suite.class_cases()
    if use_peers and peers.focus_stack_tool() is None:
        print("  " + peers.FOCUS_STACK_HINT)
    scores = quality_suite.evaluate(cases, methods, use_peers)
    quality_suite.print_scores(scores)
    print()
    quality_suite.print_verdicts(scores)


def speed_and_memory(
    methods: list[str], size: tuple[int, int], frames: int, use_peers: bool, seed: int
) -> None:
    w, h = size
    mp = w * h / 1e6
    print(f"\n== 2. Speed at {w}x{h} ({mp:.0f} MP), {frames} frames ==")
    stack = generated_stack(w, h, frames, "mix", seed)
    big = generated_stack(w, h, 2 * frames, "mix", seed)
    truth = read_rgb(stack / "ground_truth.png")
    peer = None
    if use_peers:
        print("  running align_image_stack + enfuse ...")
        peer = run_peer(stack_frames(stack), BENCH_OUT / "peers" / stack.name, truth)
    results: dict[str, tuple[dict, dict]] = {}
    scores: dict[str, tuple[float, float]] = {}
    for method in methods:
        print(f"  engine {method}: {frames} and {2 * frames} frames, fresh process each ...")
        saved = BENCH_OUT / f"result-{stack.name}-{method}.tif"
        try:
            small = run_child(stack, method, frames, saved)
            results[method] = (small, run_child(big, method, 2 * frames))
            crop = None if small["crop"] is None else tuple(small["crop"])
            scores[method] = metrics.score(
                geometry.uncrop(read_rgb(saved), crop, truth.shape), truth
            )
        except RuntimeError as err:
            print(f"  {err}")
    rows = []
    for method, (small, _) in results.items():
        ours = float(small["seconds_per_frame"])
        peer_s = peer.seconds_per_frame if peer else None
        rows.append([
            method, f"{small['accepted']}/{small['frames']}", f"{ours:.2f}",
            f"{np.median(small['add_s']):.2f}", f"{max(small['add_s']):.2f}",
            f"{np.mean(small['wait_s']):.2f}", f"{small['last_frame_to_result_s']:.2f}",
            f"{small['finalize_s']:.2f}", f"{small.get('last_frame_to_files_s', 0):.2f}",
            fmt(peer_s, ".2f"), fmt(ratio(peer_s, ours), ".1f"),
        ])  # fmt: skip
    headers = ["method", "used", "s/frame", "add median", "add max", "read wait",
               "last frame -> result", "finalize", "-> files", "enfuse s/frame",
               "enfuse/ours"]  # fmt: skip
    print(table(headers, rows))
    print("  s/frame: wall time from start to the last add() returning, / frames, with frames")
    print("  read ahead on a thread as `stackrig stack` does (so it includes reading);")
    print("  add median/max: engine time per frame; read wait: time add() waited for a frame;")
    print("  last frame -> result: the last frame decoded -> finalize() returning;")
    print("  -> files: the last frame handled -> result and report written and fsync'd;")
    print("  enfuse s/frame: (align_image_stack + enfuse wall time) / frames; enfuse/ours > 1:")
    print("  ours is faster.")

    print(f"\n   Quality of the same {mp:.0f} MP runs vs its ground truth (PSNR dB / SSIM)")
    rows = [[m, f"{p:.2f}", f"{q:.4f}"] for m, (p, q) in scores.items()]
    if peer is not None and peer.psnr is not None:
        rows.append(["enfuse", fmt(peer.psnr, ".2f"), fmt(peer.ssim, ".4f")])
    print(table(["method", "PSNR", "SSIM"], rows))

    print(f"\n== 3. Peak RSS at {w}x{h} (MiB, whole process) ==")
    rows = []
    for method, (small, large) in results.items():
        a, b = small["peak_rss_kib"], large["peak_rss_kib"]
        rows.append([
            method, f"{mib(a):.0f}", f"{mib(b):.0f}", fmt(ratio(b, a), ".2f"),
            fmt(mib(peer.peak_rss_kib) if peer and peer.peak_rss_kib else None, ".0f"),
        ])  # fmt: skip
    headers = [
        "method",
        f"N={frames}",
        f"N={2 * frames}",
        f"N={2 * frames} / N={frames}",
        f"enfuse N={frames}",
    ]
    print(table(headers, rows))
    print("  enfuse: the larger of align_image_stack's and enfuse's peak RSS.")


# ------------------------------------------------------------------------------------- main


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT") from None
    return w, h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small speed/memory stacks")
    p.add_argument("--skip-peers", action="store_true", help="do not run enfuse")
    p.add_argument("--size", type=parse_size, help="speed/memory frame size (default 6000x4000)")
    p.add_argument("--frames", type=int, help="speed stack length N (memory: N and 2N; 30)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated stacks")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    size = args.size or ((1600, 1067) if args.quick else (6000, 4000))
    frames = args.frames or (10 if args.quick else 30)
    use_peers = not args.skip_peers
    if use_peers and peers.missing_tools():
        print(peers.INSTALL_HINT + "; carrying on with our figures only.")
        use_peers = False
    print(f"stackrig benchmarks  (methods: {', '.join(methods)}; shared data: {shared_root()})")
    if not args.skip_quality:
        quality(methods, use_peers)
    if not args.skip_speed:
        speed_and_memory(methods, size, frames, use_peers, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
