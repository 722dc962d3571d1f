"""The same batch on a real ``dask.distributed.LocalCluster`` of processes, reached by its
scheduler address as any cluster would be: the same results as the local pool, an interrupted
batch resumed, a corrupt stack reported while the others are done, the workers' checks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from batch_data import corrupt, pixels, write_stack
from distributed import Client, LocalCluster

from rig.errors import BatchError
from rig.jobs import batch
from rig.jobs.batch_find import find_stacks
from rig.jobs.batch_task import FAILED, STACKED, STOPPED, UP_TO_DATE, StackDone
from stacking.settings import StackSettings


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.ERROR,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for n in range(4):
        write_stack(tmp_path / "shoot" / f"s{n}", seed=n + 1)
    return tmp_path / "shoot"


def planned(root: Path, out: Path) -> batch.Plan:
    return batch.check(batch.plan(find_stacks([root]).stacks, StackSettings(), batch.Options(out)))


def on(cluster: LocalCluster) -> batch.Where:
    return batch.Where(scheduler=cluster.scheduler_address)


def test_the_cluster_gives_the_results_of_the_local_pool(
    cluster: LocalCluster, root: Path, tmp_path: Path
) -> None:
    local = batch.run(planned(root, tmp_path / "local"), batch.Where(workers=2))
    remote = batch.run(planned(root, tmp_path / "remote"), on(cluster))
    assert remote.where == "a Dask cluster"
    assert [d.status for d in local.done] == [d.status for d in remote.done] == [STACKED] * 4
    for a, b in zip(local.done, remote.done, strict=True):
        assert a.name == b.name and a.used == b.used == 4
        assert a.result and b.result and Path(b.result).is_relative_to(tmp_path / "remote")
        assert np.array_equal(pixels(Path(a.result)), pixels(Path(b.result)))


def test_an_interrupted_batch_continues_where_it_stopped(
    cluster: LocalCluster, root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    seen: list[StackDone] = []

    def ctrl_c_after_the_first(done: StackDone) -> None:
        seen.append(done)
        raise KeyboardInterrupt  # as Ctrl-C lands in the client's wait

    ran = batch.run(planned(root, out), on(cluster), ctrl_c_after_the_first)
    assert ran.interrupted and seen[0].status == STACKED
    stopped = [d for d in ran.done if d.status == STOPPED]
    assert stopped, ran.done
    for d in ran.done:  # a stack is written whole or not at all, and no temp file stays
        image = out / d.name / "stack.tif"
        assert image.is_file() == image.with_name("stack.tif.stack.json").is_file()
    assert not [p for p in out.rglob(".*") if p.is_file()]
    again = batch.run(planned(root, out), on(cluster))
    status = {d.name: d.status for d in again.done}
    assert status[seen[0].name] == UP_TO_DATE
    assert {status[d.name] for d in stopped} == {STACKED}
    assert all((out / d.name / "stack.tif").is_file() for d in again.done)


def test_a_corrupt_stack_is_reported_and_the_others_are_done(
    cluster: LocalCluster, root: Path, tmp_path: Path
) -> None:
    corrupt(root / "s1")
    whole = (root / "s2" / "frame_000.jpg").read_bytes()
    (root / "s2" / "frame_099.jpg").write_bytes(whole[:900])  # a copy that did not finish
    ran = batch.run(planned(root, tmp_path / "out"), on(cluster))
    status = {d.name: d for d in ran.done}
    assert status["shoot/s1"].status == FAILED
    assert "none of the 4 frames could be read" in status["shoot/s1"].reason
    assert status["shoot/s2"].status == STACKED and status["shoot/s2"].used == 4
    assert "frame_099.jpg" in status["shoot/s2"].reason  # the truncated frame, left out
    assert status["shoot/s0"].status == status["shoot/s3"].status == STACKED


def test_every_worker_must_see_the_paths_and_is_named_when_it_cannot(
    cluster: LocalCluster, root: Path, tmp_path: Path
) -> None:
    plan = batch.plan(find_stacks([root]).stacks, StackSettings(), batch.Options(tmp_path / "o"))
    with Client(cluster.scheduler_address) as client:  # the outputs' folders were never made
        with pytest.raises(BatchError, match=r"worker tcp://127\.0\.0\.1:\d+ \(host .*\): "
                           r"output folder .*o/shoot/s0 does not exist"):  # fmt: skip
            batch.preflight(client, plan.tasks)
        shares = batch.preflight(client, batch.check(plan).tasks)
        assert set(shares) == set(cluster.scheduler_info["workers"])
    with pytest.raises(BatchError, match="cannot reach the Dask scheduler"):
        batch.run(batch.check(plan), batch.Where(scheduler="tcp://127.0.0.1:9", timeout_s=1))
