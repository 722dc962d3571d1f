"""The capture session's journal: fsync'd JSONL, torn last line tolerated, damage refused,
replay into a SessionState, and which planned shots are still to take."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.session.journal import (
    EVENTS,
    Event,
    Journal,
    JournalError,
    SessionError,
    next_missing,
    read_journal,
    replay,
    scan_journal,
)

SHA = "ab" * 32


def clock() -> Any:
    ticks = iter(range(1_000_000))
    return lambda: 1_700_000_000.0 + next(ticks)


def run_events(journal: Journal) -> None:
    journal.append("session_started", plan={"count": 3, "step_um": 50.0})
    for i, z in ((1, 0.0), (2, 50.0)):
        journal.append("shot_requested", index=i, position_um=z)
        journal.append("position_reached", index=i, position_um=z + 0.01)
        journal.append("file_saved", index=i, name=f"{i:04d}.jpg", size=10, sha256=SHA)
        journal.append("frame_stacked", index=i, name=f"{i:04d}.jpg")


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.create(path, clock=clock()) as journal:
        run_events(journal)
        written = journal.events
    read = read_journal(path)
    assert read == written
    assert [e.seq for e in read] == list(range(1, len(read) + 1))
    assert read[2].type == "position_reached" and read[2]["position_um"] == 0.01
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(read) and all(json.loads(line)["type"] for line in lines)


def test_each_append_is_fsynced_and_the_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    journal = Journal.create(tmp_path / "journal.jsonl")
    assert len(calls) == 1  # the folder, for the new name
    for i in range(1, 6):
        journal.append("shot_requested", index=i, position_um=i * 10.0)
        assert len(calls) == 1 + i  # on disk before append returned
    journal.close()


def test_create_never_reuses_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal.create(path).close()
    with pytest.raises(JournalError, match="resume"):
        Journal.create(path)


def test_append_checks_the_event(tmp_path: Path) -> None:
    with Journal.create(tmp_path / "j.jsonl") as journal:
        with pytest.raises(JournalError, match="unknown journal event 'shot_requestd'"):
            journal.append("shot_requestd", index=1, position_um=0.0)
        with pytest.raises(JournalError, match="no 'position_um'"):
            journal.append("shot_requested", index=1)
        with pytest.raises(JournalError, match="index = 0 is not a shot number"):
            journal.append("shot_requested", index=0, position_um=0.0)
        with pytest.raises(JournalError, match="finite"):
            journal.append("shot_requested", index=1, position_um=float("nan"))
        with pytest.raises(JournalError, match="plain file name"):
            journal.append("file_saved", index=1, name="../x.jpg", size=1, sha256=SHA)
        with pytest.raises(JournalError, match="one of retry, skip, abort"):
            journal.append("decision", index=1, choice="later", by="operator")
        assert journal.events == []  # nothing half-written either
    assert (tmp_path / "j.jsonl").read_bytes() == b""


def test_a_torn_last_line_is_ignored_and_kept_aside_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.create(path, clock=clock()) as journal:
        run_events(journal)
        count = len(journal.events)
    torn = b'{"type":"file_saved","seq":99,"ind'
    with open(path, "ab") as fh:
        fh.write(torn)
    assert len(read_journal(path)) == count
    assert scan_journal(path).torn_tail == torn
    with Journal.resume(path) as journal:
        assert journal.torn_tail is not None and journal.torn_tail.read_bytes() == torn
        event = journal.append("session_resumed")
    assert event.seq == count + 1  # seq continues; the torn event never happened
    events = read_journal(path)  # the torn bytes were cut, so the new line stands alone
    assert len(events) == count + 1 and events[-1].type == "session_resumed"


def test_a_complete_but_unterminated_last_line_is_still_torn(tmp_path: Path) -> None:
    # append() had not returned (no newline, no fsync): the event does not count
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"type":"session_paused","seq":1,"time":1.0}')
    assert read_journal(path) == []


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (b"{not json\n", "line 2 is damaged"),
        (b"\n", "line 2 is damaged"),
        (b'{"type":"shot_requested","seq":2,"time":1.0,"index":1}\n', "no 'position_um'"),
        (b'{"type":"session_paused","seq":1,"time":1.0}\n', "seq 1 after seq 1"),
        (b"[1,2]\n", "not a JSON object"),
        (b'{"type":"session_paused","seq":2,"time":1.0}\xff\n', "line 2"),
    ],
)
def test_a_damaged_middle_line_is_refused_with_its_number(
    tmp_path: Path, bad: bytes, why: str
) -> None:
    path = tmp_path / "journal.jsonl"
    good = b'{"type":"session_paused","seq":1,"time":1.0}\n'
    later = b'{"type":"session_resumed","seq":9,"time":2.0}\n'
    path.write_bytes(good + bad + later)
    with pytest.raises(JournalError, match=why) as info:
        read_journal(path)
    assert "line 2" in str(info.value)
    with pytest.raises(JournalError):
        Journal.resume(path)  # never appends after damage


def test_unknown_event_types_are_read_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"type":"from_the_future","seq":1,"time":1.0,"x":1}\n')
    (event,) = read_journal(path)
    assert event.type == "from_the_future" and event["x"] == 1
    assert replay([event]).last_seq == 1


def test_missing_journal_says_so(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        read_journal(tmp_path / "journal.jsonl")


def test_a_failed_write_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal.create(path)
    journal.append("session_paused")
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[:5]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(JournalError, match="disk is full"):
        journal.append("session_resumed")
    monkeypatch.setattr(os, "write", real_write)
    journal.append("session_resumed")
    journal.close()
    assert [e.type for e in read_journal(path)] == ["session_paused", "session_resumed"]


# -- replay --------------------------------------------------------------------------------


def ev(seq: int, event_type: str, /, **data: Any) -> Event:
    return Event(event_type, seq, float(seq), data)


def test_replay_summarises_the_run() -> None:
    events = [
        ev(1, "session_started", plan={"count": 4}),
        ev(2, "shot_requested", index=1, position_um=0.0),
        ev(3, "position_reached", index=1, position_um=0.2),
        ev(4, "file_saved", index=1, name="a.cr2", size=5, sha256=SHA, of=2),
        ev(5, "file_saved", index=1, name="a.jpg", size=3, sha256=SHA, of=2),
        ev(6, "frame_stacked", index=1, name="a.jpg"),
        ev(7, "shot_requested", index=2, position_um=10.0),
        ev(8, "fault", index=2, kind="camera", message="busy"),
        ev(9, "decision", index=2, choice="skip", by="policy"),
        ev(10, "shot_requested", index=3, position_um=20.0),
        ev(11, "file_saved", index=3, name="c.cr2", size=5, sha256=SHA, of=2),
        ev(12, "session_paused"),
        ev(13, "session_finished", outcome="aborted"),
    ]
    state = replay(events)
    assert state.plan == {"count": 4}
    assert list(state.saved) == [1]
    assert [f.name for f in state.saved[1]] == ["a.cr2", "a.jpg"]
    assert list(state.incomplete) == [3]  # the JPEG of shot 3 never landed
    assert state.stacked == {1: ["a.jpg"]}
    assert state.reached == {1: 0.2}
    assert [f.kind for f in state.faults] == ["camera"]
    assert [(d.index, d.choice, d.by) for d in state.decisions] == [(2, "skip", "policy")]
    assert state.skipped == {2}
    assert state.paused and state.outcome == "aborted" and state.last_seq == 13
    assert next_missing([0.0, 10.0, 20.0, 30.0], state) == [3, 4]
    assert next_missing([0.0, 10.0, 20.0, 30.0], state, include_skipped=True) == [2, 3, 4]
    resumed = replay([*events, ev(14, "session_resumed")])
    assert resumed.outcome is None and not resumed.paused


def test_a_rejected_frame_is_shot_again_and_counts_once_re_shot() -> None:
    events = [
        ev(1, "shot_requested", index=1, position_um=0.0),
        ev(2, "file_saved", index=1, name="a.jpg", size=5, sha256=SHA),
        ev(3, "frame_rejected", index=1, reason="a.jpg is missing"),
    ]
    state = replay(events)
    assert state.saved == {} and state.rejected == {1: "a.jpg is missing"}
    assert next_missing([0.0], state) == [1]
    state = replay([*events, ev(4, "file_saved", index=1, name="a.jpg", size=6, sha256=SHA)])
    assert state.saved[1][0].size == 6 and next_missing([0.0], state) == []


def test_after_a_crash_the_shot_without_its_file_is_shot_again(tmp_path: Path) -> None:
    plan = [float(z) for z in range(0, 100, 10)]
    path = tmp_path / "journal.jsonl"
    with Journal.create(path) as journal:
        journal.append("session_started", plan={"positions": plan})
        for i, z in enumerate(plan[:4], start=1):
            journal.append("shot_requested", index=i, position_um=z)
            journal.append("file_saved", index=i, name=f"{i}.jpg", size=1, sha256=SHA)
        journal.append("shot_requested", index=5, position_um=plan[4])  # then the power went
    state = replay(read_journal(path))
    assert next_missing(plan, state) == [5, 6, 7, 8, 9, 10]


def test_next_missing_refuses_another_plan() -> None:
    state = replay(
        [
            ev(1, "shot_requested", index=1, position_um=0.0),
            ev(2, "file_saved", index=1, name="a.jpg", size=5, sha256=SHA),
        ]
    )
    with pytest.raises(SessionError, match="not the plan"):
        next_missing([5.0, 10.0], state)


# -- property: any sequence of valid events survives the round trip -------------------------

indices = st.integers(1, 10_000)
positions = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
names = st.from_regex(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]{0,20}", fullmatch=True)
texts = st.text(max_size=30)
EVENT_STRATEGIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "session_started": st.fixed_dictionaries(
        {"plan": st.dictionaries(st.text(max_size=5), st.integers() | texts, max_size=3)}
    ),
    "shot_requested": st.fixed_dictionaries({"index": indices, "position_um": positions}),
    "position_reached": st.fixed_dictionaries({"index": indices, "position_um": positions}),
    "file_saved": st.fixed_dictionaries(
        {
            "index": indices,
            "name": names,
            "size": st.integers(0, 2**40),
            "sha256": st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        },
        optional={"of": st.integers(1, 4)},
    ),
    "frame_stacked": st.fixed_dictionaries({"index": indices, "name": names}),
    "frame_rejected": st.fixed_dictionaries({"index": indices, "reason": texts}),
    "fault": st.fixed_dictionaries({"index": st.none() | indices, "kind": texts, "message": texts}),
    "decision": st.fixed_dictionaries(
        {
            "index": indices,
            "choice": st.sampled_from(["retry", "skip", "abort"]),
            "by": st.sampled_from(["operator", "policy"]),
        }
    ),
    "rail_reconnected": st.fixed_dictionaries({"index": indices, "message": texts}),
    "session_extended": st.fixed_dictionaries(
        {
            "positions_um": st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=4),
            "end": st.sampled_from(["first", "last"]),
        }
    ),
    "session_paused": st.just({}),
    "session_resumed": st.just({}),
    "session_finished": st.fixed_dictionaries({"outcome": texts}),
}
assert set(EVENT_STRATEGIES) == set(EVENTS)
any_event = st.one_of(
    [st.tuples(st.just(kind), fields) for kind, fields in EVENT_STRATEGIES.items()]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(any_event, max_size=25), st.binary(max_size=40).filter(lambda b: b"\n" not in b))
def test_round_trip_of_random_events(
    tmp_path: Path, events: list[tuple[str, dict[str, Any]]], torn: bytes
) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "journal.jsonl"  # fresh per example
    with Journal.create(path) as journal:
        for kind, fields in events:
            journal.append(kind, **fields)
        written = journal.events
    with open(path, "ab") as fh:
        fh.write(torn)  # whatever a crash leaves after the last complete line
    read = read_journal(path)
    assert read == written
    assert replay(read) == replay(written)
