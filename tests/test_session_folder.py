"""The capture session's folder: never reused, frame names, saving downloads without ever
overwriting, verifying frames on resume, and leftovers kept (never deleted) and reported."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import SessionError
from rig.profiles import Profile
from rig.session.folder import (
    SessionFolder,
    create_session_folder,
    frame_name,
    journal_saved,
    read_session_file,
    recover,
    save_frame,
    sweep_incoming,
    verify_frames,
    write_session_file,
)
from rig.session.journal import Journal, next_missing, read_journal

NOW = datetime(2026, 1, 31, 14, 25, 1)
PLAN = [0.0, 50.0, 100.0, 150.0, 200.0, 250.0]


def new_session(root: Path) -> SessionFolder:
    session = create_session_folder(root, "GRBL macro", NOW)
    write_session_file(session, Profile(name="grbl macro"), {"positions": PLAN, "x": None}, NOW)
    return session


def download(session: SessionFolder, *names: str, data: bytes = b"pixels") -> list[Path]:
    """What the camera leaves in frames/.incoming/ after one shot."""
    paths = []
    for name in names:
        path = session.incoming / name
        path.write_bytes(data + name.encode())
        paths.append(path)
    return paths


def shoot(session: SessionFolder, journal: Journal, index: int, *names: str) -> None:
    journal.append("shot_requested", index=index, position_um=PLAN[index - 1])
    saved = save_frame(session, index, PLAN[index - 1], download(session, *names))
    journal_saved(journal, saved)


# -- the folder ----------------------------------------------------------------------------


def test_folder_layout_and_name(tmp_path: Path) -> None:
    session = new_session(tmp_path / "captures")
    assert session.path == tmp_path / "captures" / "2026-01-31_142501_grbl-macro"
    assert session.frames.is_dir() and session.incoming.is_dir()
    assert session.incoming.parent == session.frames and session.incoming.name.startswith(".")
    assert session.outputs.image.name == "stack.tif"
    assert session.outputs.depth_map is not None and session.preview.name == "preview.jpg"
    snapshot = read_session_file(session)
    assert snapshot.plan == {"positions": PLAN}  # None is left out: TOML has no null
    assert snapshot.profile().name == "grbl macro"
    assert snapshot.created == "2026-01-31T14:25:01"


def test_a_folder_is_never_reused(tmp_path: Path) -> None:
    first = create_session_folder(tmp_path, "p", NOW)
    (first.frames / "0001_z+0.0um.jpg").write_bytes(b"precious")
    second = create_session_folder(tmp_path, "p", NOW)
    third = create_session_folder(tmp_path, "p", NOW)
    assert [s.path.name for s in (first, second, third)] == [
        "2026-01-31_142501_p",
        "2026-01-31_142501_p-2",
        "2026-01-31_142501_p-3",
    ]
    assert (first.frames / "0001_z+0.0um.jpg").read_bytes() == b"precious"
    (tmp_path / "2026-01-31_142501_q").write_bytes(b"a file, not a folder")
    assert create_session_folder(tmp_path, "q", NOW).path.name == "2026-01-31_142501_q-2"


def test_the_profile_template_names_the_folder(tmp_path: Path) -> None:
    session = create_session_folder(tmp_path, "p", NOW, template="{profile}-{date}")
    assert session.path.name == "p-2026-01-31"
    with pytest.raises(SessionError, match="not a folder name"):
        create_session_folder(tmp_path, "p", NOW, template="{date}/{profile}")


def test_session_file_is_written_once(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    with pytest.raises(SessionError, match="only once"):
        write_session_file(session, Profile(name="other"), {}, NOW)
    assert read_session_file(session).profile().name == "grbl macro"


def test_open_refuses_what_is_not_a_session(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="no such folder"):
        SessionFolder.open(tmp_path / "nowhere")
    with pytest.raises(SessionError, match="not a capture session folder"):
        SessionFolder.open(tmp_path)
    (tmp_path / "session.toml").write_text('title = "my notes"\n')
    with pytest.raises(SessionError, match="not a session of this stackrig"):
        SessionFolder.open(tmp_path)
    session = new_session(tmp_path / "c")
    with pytest.raises(SessionError, match=r"no journal\.jsonl"):
        SessionFolder.open(session.path)
    Journal.create(session.journal).close()
    assert SessionFolder.open(session.path) == session


# -- frame names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "position", "axis", "ext", "name"),
    [
        (7, 1234.5, "z", ".jpg", "0007_z+1234.5um.jpg"),
        (1, 0.0, "z", ".jpg", "0001_z+0.0um.jpg"),
        (12, -250.0, "z", ".CR2", "0012_z-250.0um.cr2"),
        (3, 0.125, "x", ".jpg", "0003_x+0.125um.jpg"),
        (3, 1.23456, "z", ".jpg", "0003_z+1.235um.jpg"),
        (3, -0.0001, "z", ".jpg", "0003_z+0.0um.jpg"),
        (12345, 10.0, "lens", ".nef", "12345_lens+10.0um.nef"),
    ],
)
def test_frame_names(index: int, position: float, axis: str, ext: str, name: str) -> None:
    assert frame_name(index, position, axis, ext) == name


@pytest.mark.parametrize(
    "args", [(0, 1.0), (1, float("nan")), (1, 1.0, "Z/"), (1, 1.0, "z", "jpg"), (True, 1.0)]
)
def test_frame_name_refuses_nonsense(args: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        frame_name(*args)


@given(st.integers(1, 9999), st.floats(-1e6, 1e6, allow_nan=False))
def test_frame_names_sort_by_index_and_stay_plain(index: int, position: float) -> None:
    name = frame_name(index, position)
    assert name.startswith(f"{index:04d}_z") and name.endswith("um.jpg")
    assert "/" not in name and not name.startswith(".")
    assert float(name[6:-6]) == pytest.approx(position, abs=5e-4)


# -- saving --------------------------------------------------------------------------------


def test_save_frame_moves_a_raw_jpeg_pair_under_one_stem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = new_session(tmp_path)
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    saved = save_frame(session, 2, 50.0, download(session, "IMG_1.CR2", "IMG_1.JPG"))
    assert [s.path.name for s in saved] == ["0002_z+50.0um.cr2", "0002_z+50.0um.jpg"]
    assert list(session.incoming.iterdir()) == []
    assert len(synced) >= 2 + 2  # both files, then frames/ and .incoming/
    for item in saved:
        assert item.path.read_bytes().startswith(b"pixels")
        assert item.record.size == item.path.stat().st_size
        assert item.record.index == 2 and len(item.record.sha256) == 64


def test_save_frame_never_overwrites(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    save_frame(session, 1, 0.0, download(session, "a.jpg", data=b"first"))
    again = download(session, "b.cr2", "b.jpg", data=b"second")
    with pytest.raises(SessionError, match="saved twice"):
        save_frame(session, 1, 0.0, again)
    assert (session.frames / "0001_z+0.0um.jpg").read_bytes() == b"firsta.jpg"
    assert all(p.exists() for p in again)  # nothing was moved, not even the free one
    assert not (session.frames / "0001_z+0.0um.cr2").exists()


def test_two_files_of_one_type_in_a_shot_are_both_kept(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    saved = save_frame(session, 1, 0.0, download(session, "a.jpg", "b.JPG"))
    assert [s.path.name for s in saved] == ["0001_z+0.0um.jpg", "0001_z+0.0um-2.jpg"]


def test_save_frame_refuses_an_empty_or_missing_download(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    with pytest.raises(SessionError, match="no file"):
        save_frame(session, 1, 0.0, [])
    with pytest.raises(SessionError, match="missing"):
        save_frame(session, 1, 0.0, [session.incoming / "gone.jpg"])


def test_file_systems_without_hard_links_still_never_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(1, "Operation not permitted")  # EPERM: what exFAT says

    monkeypatch.setattr(os, "link", no_links)
    session = new_session(tmp_path)
    (saved,) = save_frame(session, 1, 0.0, download(session, "a.jpg"))
    assert saved.path.is_file() and list(session.incoming.iterdir()) == []
    with pytest.raises(SessionError, match="saved twice"):
        save_frame(session, 1, 0.0, download(session, "a.jpg"))


# -- verify and recover --------------------------------------------------------------------


def test_verify_catches_truncated_modified_and_missing_frames(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    with Journal.create(session.journal) as journal:
        for i in range(1, 5):
            shoot(session, journal, i, "x.jpg")
        state = journal.state()
    frames = sorted(session.frames.glob("0*"))
    with open(frames[1], "r+b") as fh:
        fh.truncate(3)
    data = bytearray(frames[2].read_bytes())
    data[0] ^= 0xFF  # same size, different bytes
    frames[2].write_bytes(bytes(data))
    frames[3].unlink()
    good, bad = verify_frames(session, state)
    assert list(good) == [1] and good[1] == [frames[0]]
    assert "3 bytes" in bad[2] and "sha256" in bad[3] and "missing" in bad[4]


def test_a_shot_with_only_its_raw_journaled_is_bad(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    with Journal.create(session.journal) as journal:
        saved = save_frame(session, 1, 0.0, download(session, "a.cr2", "a.jpg"))
        r = saved[0].record  # killed between the RAW's journal line and the JPEG's
        journal.append("file_saved", index=1, name=r.name, size=r.size, sha256=r.sha256, of=2)
        good, bad = verify_frames(session, journal.state())
        assert good == {} and bad == {1: "1 of 2 files were saved"}
        recovery = recover(session, journal)
    assert sorted(p.name for p in recovery.rejected) == ["0001_z+0.0um.cr2"]
    assert [p.name for p in recovery.orphans] == ["0001_z+0.0um.jpg"]
    assert next_missing([0.0], recovery.state) == [1]


def test_recover_keeps_leftovers_rejects_bad_frames_and_re_shoots_them(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    journal = Journal.create(session.journal)
    journal.append("session_started", plan={"positions": PLAN})
    for i in range(1, 4):
        shoot(session, journal, i, "x.cr2", "x.jpg")
    # shot 4: saved into frames/ but killed before the journal line
    journal.append("shot_requested", index=4, position_um=PLAN[3])
    save_frame(session, 4, PLAN[3], download(session, "y.jpg"))
    # shot 5: killed mid-download (gphoto's hidden temp name, and one complete file)
    journal.append("shot_requested", index=5, position_um=PLAN[4])
    (session.incoming / ".IMG_5.CR2.ab12cd34.tmp").write_bytes(b"half a ra")
    (session.incoming / "IMG_5.JPG").write_bytes(b"a whole jpeg")
    journal.close()
    with open(session.frames / "0002_z+50.0um.jpg", "r+b") as fh:
        fh.truncate(2)  # half-written on the disk despite the journal

    session = SessionFolder.open(session.path)
    with Journal.resume(session.journal) as journal:
        recovery = recover(session, journal)
        assert next_missing(PLAN, recovery.state) == [2, 4, 5, 6]
    assert list(recovery.good) == [1, 3] and list(recovery.bad) == [2]
    assert sorted(p.name for p in recovery.orphans) == [
        "0004_z+150.0um.jpg",
        "IMG_5.CR2.ab12cd34.tmp",  # made visible: nothing hides in orphans/
        "IMG_5.JPG",
    ]
    assert all(p.parent == session.orphans and p.is_file() for p in recovery.orphans)
    assert sorted(p.name for p in recovery.rejected) == ["0002_z+50.0um.cr2", "0002_z+50.0um.jpg"]
    assert (session.orphans / "IMG_5.CR2.ab12cd34.tmp").read_bytes() == b"half a ra"
    assert sorted(p.name for p in session.frames.iterdir()) == [
        ".incoming",
        "0001_z+0.0um.cr2",
        "0001_z+0.0um.jpg",
        "0003_z+100.0um.cr2",
        "0003_z+100.0um.jpg",
    ]
    assert "2 shots verified" in recovery.summary()
    assert read_journal(session.journal)[-1].type == "frame_rejected"

    # the re-shoots land under the names the bad and orphaned frames had
    with Journal.resume(session.journal) as journal:
        for i in (2, 4, 5):
            shoot(session, journal, i, "z.jpg")
        again = recover(session, journal)
        assert next_missing(PLAN, again.state) == [6]
    assert again.bad == {} and again.orphans == [] and list(again.good) == [1, 2, 3, 4, 5]


def test_an_orphan_never_replaces_an_earlier_one(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    for data in (b"one", b"two"):
        (session.incoming / "IMG.JPG").write_bytes(data)
        (moved,) = sweep_incoming(session)
    assert sorted(p.name for p in session.orphans.iterdir()) == ["IMG-2.JPG", "IMG.JPG"]
    assert (session.orphans / "IMG.JPG").read_bytes() == b"one"
    assert moved.read_bytes() == b"two"


def test_a_download_with_an_odd_extension_is_refused_not_renamed_wildly(tmp_path: Path) -> None:
    session = new_session(tmp_path)
    (odd,) = download(session, "IMG.jpg~backup")
    with pytest.raises(SessionError, match="cannot be named"):
        save_frame(session, 1, 0.0, [odd])
    assert odd.exists()
