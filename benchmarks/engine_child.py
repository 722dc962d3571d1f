"""Child process of the speed and memory benchmark: one stack, stacked as `stackrig stack` does.

``python -m benchmarks.engine_child STACK METHOD LIMIT [RESULT]`` prints one JSON line and,
given RESULT, writes the result there (8-bit TIFF) for the parent to score, as the command
writes its output. The process is
tuned first (before OpenCV loads), and frames are read ahead on a background thread, exactly
like the command, so the figures are the ones a user gets.
"""

from rig.tuning import tune_process

tune_process()

import json  # noqa: E402  (after tune_process on purpose)
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rig.jobs.restack import read_ahead  # noqa: E402
from stacking import io  # noqa: E402
from stacking.engine import StackEngine, StackSettings  # noqa: E402
from stacking.errors import ImageReadError  # noqa: E402


def stack_frames(stack: Path) -> list[Path]:
    meta = json.loads((stack / "meta.json").read_text())
    return [stack / f["file"] for f in meta["frames"]]


def run(stack: Path, method: str, limit: int, save: Path | None = None) -> dict[str, object]:
    frames = stack_frames(stack)[:limit]
    engine = StackEngine(StackSettings(method=method))
    add_s, wait_s, accepted = [], [], 0
    start = previous = arrived = time.perf_counter()
    for _path, loaded in read_ahead(frames):
        arrived = time.perf_counter()  # the frame is decoded and in memory
        if isinstance(loaded, ImageReadError):
            raise loaded
        report = engine.add(loaded.pixels)
        done = time.perf_counter()
        del loaded
        wait_s.append(arrived - previous)
        add_s.append(done - arrived)
        previous = done
        accepted += bool(report.accepted)
    result = engine.finalize()
    final = time.perf_counter()
    if save is not None:
        io.write_image(save, result.image, bit_depth=8)
    return {
        "method": method,
        "frames": len(frames),
        "accepted": accepted,
        "seconds_per_frame": (previous - start) / len(frames),
        "add_s": add_s,
        "wait_s": wait_s,
        "last_frame_to_result_s": final - arrived,
        "finalize_s": final - previous,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    save = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    print(json.dumps(run(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), save)))
