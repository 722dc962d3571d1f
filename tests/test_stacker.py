"""The stacking worker: frames submitted as they land, stacked on its own thread, outputs
written as one staged set (all or nothing)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import focus_stack, textured_scene, to_u8

from rig.errors import Interrupted
from rig.jobs import restack
from rig.outputs import StackOutputs
from rig.session.stacker import FrameDone, StackAborted, StackingWorker, StackJob
from stacking import files
from stacking.errors import ImageReadError
from stacking.settings import StackSettings


@pytest.fixture
def frames(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "frames"
    folder.mkdir()
    stack, _ = focus_stack(textured_scene(), frames=5)
    paths = []
    for i, frame in enumerate(stack):
        path = folder / f"f{i:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(to_u8(frame), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def job(tmp_path: Path, **options: object) -> StackJob:
    outputs = StackOutputs.beside(tmp_path / "out.tif", tmp_path / "depth.png")
    return StackJob(StackSettings(align="none"), outputs, **options)  # type: ignore[arg-type]


def test_frames_submitted_one_by_one_are_stacked_as_they_arrive(
    frames: list[Path], tmp_path: Path
) -> None:
    seen: list[FrameDone] = []
    previews: list[tuple[tuple[int, ...], int]] = []
    arrived = threading.Event()

    def on_frame(done: FrameDone) -> None:
        seen.append(done)
        arrived.set()

    work = job(
        tmp_path,
        on_frame=on_frame,
        on_preview=lambda image, n: previews.append((image.shape, n)),
        preview_every=2,
        preview_side=64,
    )
    worker = StackingWorker(work).start()
    for path in frames:  # like a capture: one frame, then the next
        arrived.clear()
        worker.submit(path)
        assert arrived.wait(20), "the worker did not take the frame while waiting for more"
    outcome = worker.finish()
    assert [d.path for d in seen] == frames and [d.handled for d in seen] == [1, 2, 3, 4, 5]
    assert all(d.report is not None and d.report.accepted for d in seen)
    assert [n for _, n in previews] == [2, 4] and max(previews[0][0][:2]) <= 64
    assert len(outcome.result.accepted) == 5
    for path in outcome.outputs.paths():
        assert path.is_file(), path
    report = json.loads(outcome.outputs.report.read_text())
    assert report["output"] == "out.tif" and report["depth_map"] == "depth.png"
    assert [f["name"] for f in report["frames"]] == [p.name for p in frames]
    assert outcome.last_frame_to_result_s >= outcome.finalize_s > 0
    assert leftovers(tmp_path) == []


def test_submit_never_waits_for_a_slow_engine(frames: list[Path], tmp_path: Path) -> None:
    worker = StackingWorker(job(tmp_path, on_frame=lambda _: time.sleep(0.3))).start()
    start = time.perf_counter()
    for path in frames:
        worker.submit(path)
    assert time.perf_counter() - start < 0.1
    assert worker.backlog >= 3  # the frames wait on disk, the caller goes on
    worker.finish()


def test_abort_writes_nothing(frames: list[Path], tmp_path: Path) -> None:
    started = threading.Event()
    worker = StackingWorker(job(tmp_path, on_frame=lambda _: started.set())).start()
    for path in frames:
        worker.submit(path)
    assert started.wait(20)
    assert worker.abort() is False
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "depth.png").exists()
    assert leftovers(tmp_path) == []
    with pytest.raises(StackAborted, match="nothing was written"):
        worker.finish()


def test_interrupt_while_writing_leaves_no_output_and_says_so(
    frames: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = files.commit

    def interrupted(staged: object) -> list[Path]:
        raise KeyboardInterrupt  # Ctrl-C between staging and renaming

    monkeypatch.setattr(files, "commit", interrupted)
    prepared = restack.prepare(frames, tmp_path / "out.tif", settings=StackSettings(align="none"))
    with pytest.raises(Interrupted, match="nothing was written"):
        restack.run(prepared)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    monkeypatch.setattr(files, "commit", real_commit)
    outcome = restack.run(prepared)
    assert outcome.outputs.image.is_file() and leftovers(tmp_path) == []


def test_unusable_frames_are_named_and_skipped_or_stop_a_strict_stack(
    frames: list[Path], tmp_path: Path
) -> None:
    frames[1].write_bytes(b"\x89PNG\r\n\x1a\n broken")
    small = cv2.resize(cv2.imread(str(frames[2])), (100, 80))
    cv2.imwrite(str(frames[2]), small)
    worker = StackingWorker(job(tmp_path)).start()
    for path in frames:
        worker.submit(path)
    outcome = worker.finish()
    problems = {p.name: why for p, why in outcome.unusable}
    assert set(problems) == {"f01.png", "f02.png"}
    assert "truncated" in problems["f01.png"] and "100x80" in problems["f02.png"]
    assert len(outcome.result.accepted) == 3
    strict = StackingWorker(job(tmp_path / "..", strict=True)).start()
    for path in frames:
        strict.submit(path)
    with pytest.raises(ImageReadError, match=r"f01\.png"):
        strict.finish()


def test_offline_and_live_give_the_same_result(frames: list[Path], tmp_path: Path) -> None:
    outcome = restack.run(
        restack.prepare(frames, tmp_path / "a.tif", settings=StackSettings(align="none"))
    )
    live = StackingWorker(job(tmp_path)).start()
    for path in frames:
        live.submit(path)
        time.sleep(0.02)
    other = live.finish()
    assert np.array_equal(outcome.result.image, other.result.image)
