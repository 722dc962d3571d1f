"""Child process of the speed and memory benchmark: one stack, stacked as `stackrig stack` does.

``python -m benchmarks.engine_child STACK METHOD LIMIT [RESULT]`` prints one JSON line. The
process is tuned first (before OpenCV loads) and the frames go through the same stacking worker
as the command (read ahead on a second thread, engine on its own thread, result + report written
as one staged set), so the figures are the ones a user gets. RESULT (8-bit TIFF) is kept for the
parent to score; without it the outputs go to a temporary folder.
"""

from rig.tuning import tune_process

tune_process()

import json  # noqa: E402  (after tune_process on purpose)
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rig.outputs import StackOutputs  # noqa: E402
from rig.session.stacker import FrameDone, StackingWorker, StackJob  # noqa: E402
from stacking.settings import StackSettings  # noqa: E402


def stack_frames(stack: Path) -> list[Path]:
    meta = json.loads((stack / "meta.json").read_text())
    return [stack / f["file"] for f in meta["frames"]]


def run(stack: Path, method: str, limit: int, save: Path) -> dict[str, object]:
    frames = stack_frames(stack)[:limit]
    handled: list[float] = []  # when each frame was done
    add_s: list[float] = []

    def on_frame(done: FrameDone) -> None:
        if done.report is None:
            raise RuntimeError(f"{done.path.name}: {done.problem}")
        handled.append(time.perf_counter())
        add_s.append(done.report.seconds)

    job = StackJob(
        StackSettings(method=method), StackOutputs.beside(save), bit_depth=8, on_frame=on_frame
    )
    start = time.perf_counter()
    worker = StackingWorker(job).start()
    for path in frames:
        worker.submit(path)
    outcome = worker.finish()
    gaps = [b - a for a, b in zip([start, *handled], handled, strict=False)]
    return {
        "method": method,
        "frames": len(frames),
        "accepted": len(outcome.result.accepted),
        "crop": outcome.result.crop,
        "seconds_per_frame": (handled[-1] - start) / len(frames),
        "add_s": add_s,
        "wait_s": [max(0.0, gap - add) for gap, add in zip(gaps, add_s, strict=True)],
        # The last frame decoded -> finalize() returning; then the files written as well.
        "last_frame_to_result_s": add_s[-1] + outcome.finalize_s,
        "finalize_s": outcome.finalize_s,
        "last_frame_to_files_s": outcome.last_frame_to_result_s,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        save = Path(sys.argv[4]) if len(sys.argv) > 4 else Path(scratch) / "result.tif"
        print(json.dumps(run(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), save)))
