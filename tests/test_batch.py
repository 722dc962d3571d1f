"""``stackrig batch`` on this machine: finding and splitting stacks, the local worker pool,
resuming, failures reported at the end, outputs checked before any work."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from batch_data import corrupt, pixels, tree, write_stack
from test_cli_inputs import cli

from rig.errors import BatchError
from rig.jobs import batch
from rig.jobs.batch_find import Split, find_stacks
from rig.jobs.batch_task import FAILED, STACKED, STOPPED, UP_TO_DATE
from stacking.settings import StackSettings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two plain folders of frames, a capture-session-like folder and a flat folder holding
    two stacks shot one after the other."""
    top = tmp_path / "shoot"
    write_stack(top / "a", seed=1)
    write_stack(top / "deeper" / "b", seed=2)
    session = top / "2026-01-31_142501_rig"
    write_stack(session / "frames", seed=3)
    (session / "session.toml").write_text("stackrig_session = 1\n")
    write_stack(session / "orphans", seed=4)  # a session's own subfolder: never a stack
    write_stack(top / "flat", seed=5, taken=datetime(2026, 1, 1, 10, 0, 0))
    write_stack(top / "flat", seed=6, start=4, taken=datetime(2026, 1, 1, 10, 5, 0))
    return top


def statuses(table: str) -> dict[str, str]:
    """The summary table's rows: stack -> status (the last column, which may hold spaces)."""
    rows = table.splitlines()[1:]
    known = (STACKED, UP_TO_DATE, FAILED, STOPPED)
    return {r.split()[0]: next(k for k in known if r.endswith(k)) for r in rows}


def names(found: list[batch.Stack]) -> list[tuple[str, int]]:
    return [(s.name, len(s.frames)) for s in found]


def test_stacks_are_found_below_the_roots_and_flat_folders_split_three_ways(root: Path) -> None:
    found = find_stacks([root]).stacks
    assert names(found) == [
        ("shoot/2026-01-31_142501_rig", 4),
        ("shoot/a", 4),
        ("shoot/deeper/b", 4),
        ("shoot/flat", 8),
    ]
    assert found[0].session and found[0].frames[0].parent.name == "frames"
    by_gap = find_stacks([root / "flat"], Split(gap_s=60)).stacks
    assert names(by_gap) == [("flat/part01", 4), ("flat/part02", 4)]
    assert [p.name for p in by_gap[1].frames] == [f"frame_{i:03d}.jpg" for i in range(4, 8)]
    by_count = find_stacks([root / "flat"], Split(every=3)).stacks
    assert names(by_count) == [("flat/part01", 3), ("flat/part02", 3), ("flat/part03", 2)]
    (root / "flat" / "notes.jpg").write_bytes((root / "flat" / "frame_000.jpg").read_bytes())
    by_name = find_stacks([root / "flat"], Split(pattern=r"frame_00([0-3])"))
    assert names(by_name.stacks) == [(f"flat/{i}", 1) for i in range(4)]
    left = sorted(p.name for p, _ in by_name.left_out)
    assert left == ["frame_004.jpg", "frame_005.jpg", "frame_006.jpg", "frame_007.jpg", "notes.jpg"]


def test_a_gap_split_needs_capture_times_and_says_so(tmp_path: Path) -> None:
    write_stack(tmp_path / "plain", seed=1)  # no EXIF: a folder, not a timed series
    kept = find_stacks([tmp_path / "plain"], Split(gap_s=5))
    assert names(kept.stacks) == [("plain", 4)] and "no EXIF capture times" in kept.notes[0]
    write_stack(tmp_path / "mixed", seed=1, taken=datetime(2026, 1, 1))
    write_stack(tmp_path / "mixed", seed=2, start=4)  # these four have none
    with pytest.raises(BatchError, match=r"frame_004.jpg: no EXIF capture time.*--split-every"):
        find_stacks([tmp_path / "mixed"], Split(gap_s=5))
    with pytest.raises(BatchError, match="give one way to split"):
        Split(every=2, gap_s=5)


def test_the_dry_run_lists_the_split_and_writes_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(tmp_path)
    ran = cli(capsys, "batch", root, "-o", tmp_path / "out", "--split-gap", "60", "--dry-run")
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert (
        f"shoot/flat/part02: 4 frames (frame_004.jpg .. frame_007.jpg) -> {tmp_path}" in (lines[-1])
    )
    assert lines[-1].endswith("out/shoot/flat/stack-part02.tif")
    assert "5 stacks; dry run" in ran.err
    assert tree(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_batch_runs_reports_and_resumes_skipping_what_is_done(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    inputs = tree(root)
    first = cli(capsys, "batch", root, "-o", out, "--split-gap", "60", "--workers", "2", "-q")
    assert first.code == 0, first.err
    header, *rows = first.out.splitlines()
    assert header.split() == ["stack", "frames", "time", "result", "status"]
    assert len(rows) == 5 and all(r.endswith(STACKED) and " 4/4 " in r for r in rows)
    report = json.loads((out / "stackrig-batch.json").read_text())
    assert report["counts"] == {STACKED: 5} and report["interrupted"] is False
    assert {s["name"] for s in report["stacks"]} >= {"shoot/flat/part01", "shoot/a"}
    assert (out / "shoot" / "flat" / "stack-part01.tif").is_file()
    assert tree(root) == inputs  # nothing written below the inputs
    done = tree(out)

    again = cli(capsys, "batch", root, "-o", out, "--split-gap", "60", "--workers", "2", "-q")
    assert again.code == 0 and all(r.endswith(UP_TO_DATE) for r in again.out.splitlines()[1:])
    unchanged = {k: v for k, v in tree(out).items() if k != "stackrig-batch.json"}
    assert unchanged == {k: v for k, v in done.items() if k != "stackrig-batch.json"}

    write_stack(root / "a", seed=9)  # new frames in one stack: only it is stacked again
    third = cli(capsys, "batch", root, "-o", out, "--split-gap", "60", "--workers", "2", "-q")
    status = statuses(third.out)
    assert status["shoot/a"] == STACKED and list(status.values()).count(UP_TO_DATE) == 4
    # other settings are another result: everything is stacked again
    fourth = cli(
        capsys, "batch", root, "-o", out, "--split-gap", "60", "--method", "weighted", "-q"
    )
    assert fourth.code == 0 and all(r.endswith(STACKED) for r in fourth.out.splitlines()[1:])


def test_a_bad_stack_is_reported_at_the_end_and_the_others_are_done(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    corrupt(root / "a")
    theirs = out / "shoot" / "deeper" / "b" / "stack.tif"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone else's file")
    ran = cli(capsys, "batch", root, "-o", out, "--workers", "2", "-q")
    assert ran.code == 1
    status = statuses(ran.out)
    assert status == {
        "shoot/2026-01-31_142501_rig": STACKED,
        "shoot/a": FAILED,
        "shoot/deeper/b": FAILED,
        "shoot/flat": STACKED,
    }
    assert "failed shoot/a: none of the 4 frames could be read" in ran.err
    assert "stackrig did not make it" in ran.err and theirs.read_bytes() == b"someone else's file"
    assert "2 of 4 stacks failed" in ran.err
    report = json.loads((out / "stackrig-batch.json").read_text())
    failed = {s["name"]: s["reason"] for s in report["stacks"] if s["status"] == FAILED}
    assert "none of the 4 frames could be read" in failed["shoot/a"]


def test_outputs_beside_the_frames_and_refusals_before_any_work(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli(capsys, "batch", root / "a", "-q")
    assert ran.code == 0, ran.err
    assert (root / "a" / "stack.tif").is_file() and (root / "a" / "stackrig-batch.json").is_file()
    again = cli(capsys, "batch", root / "a", "-q")  # the result is not taken for a frame
    assert again.code == 0 and again.out.splitlines()[1].endswith(UP_TO_DATE)
    assert cli(capsys, "batch", tmp_path / "nowhere", "-q").code == 1
    (tmp_path / "file").write_text("x")
    assert cli(capsys, "batch", root, "-o", tmp_path / "file").code == 2
    (tmp_path / "r.json").write_text("{}")
    refused = cli(capsys, "batch", root, "-o", tmp_path / "o", "--report", tmp_path / "r.json")
    assert refused.code == 1 and "not a stackrig batch report" in refused.err
    assert not list((tmp_path / "o").rglob("*.tif"))  # refused before any stack was started
    write_stack(tmp_path / "x" / "a", seed=1)
    write_stack(tmp_path / "y" / "a", seed=2)  # two roots of one name: one output folder
    twins = find_stacks([tmp_path / "x" / "a", tmp_path / "y" / "a"]).stacks
    with pytest.raises(BatchError, match=r"x/a and .*y/a would both write .*o/a/stack.tif"):
        batch.plan(twins, StackSettings(), batch.Options(tmp_path / "o"))
    with pytest.raises(BatchError, match="no stacks found"):
        batch.plan([], StackSettings(), batch.Options())


def test_the_local_pool_listens_on_loopback_only_and_matches_a_plain_stack(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    import psutil

    stacks = find_stacks([root / "a"]).stacks
    plan = batch.check(batch.plan(stacks, StackSettings(), batch.Options(tmp_path / "out")))
    with batch.connect(batch.Where(workers=2), plan.tasks) as (client, where):
        assert where == "this machine: 2 worker processes"
        me = psutil.Process(os.getpid())
        pids = {me.pid, *(c.pid for c in me.children(recursive=True))}
        listening = [
            c.laddr
            for c in psutil.net_connections("inet")
            if c.pid in pids and c.status == psutil.CONN_LISTEN
        ]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        shares = batch.preflight(client, plan.tasks)
        assert sorted(shares.values()) == [max(1, batch.cores() // 2)] * 2
    ran = batch.run(plan, batch.Where(workers=1))
    assert [d.status for d in ran.done] == [STACKED]
    assert cli(capsys, "stack", root / "a", "-o", tmp_path / "plain.tif", "-q").code == 0
    assert np.array_equal(pixels(Path(ran.done[0].result or "")), pixels(tmp_path / "plain.tif"))
