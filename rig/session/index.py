"""The sessions under a captures folder, each summed up from its own session.toml and journal
(read only: listing never touches a session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError, SessionError
from rig.session.folder import SessionFolder, read_session_file
from rig.session.journal import read_journal, replay
from rig.session.run import shot_positions


@dataclass(frozen=True)
class SessionSummary:
    path: Path
    profile: str
    planned: int  # shots the plan and its extensions ask for
    saved: int  # shots on record as saved
    outcome: str  # done, aborted, failed, paused, disk; "interrupted" when it never said
    problem: str = ""  # why it could not be read, if so

    @property
    def resumable(self) -> bool:
        return not self.problem and self.outcome != "done"

    @property
    def name(self) -> str:
        return self.path.name


def list_sessions(root: Path) -> list[SessionSummary]:
    """Every session folder directly under ``root``, newest first (names start with the date)."""
    if not root.is_dir():
        return []
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir()), reverse=True)
    except OSError as exc:
        raise SessionError(f"{root} cannot be listed ({exc.strerror or exc})") from exc
    found = []
    for path in folders:
        if (path / "journal.jsonl").is_file() and (path / "session.toml").is_file():
            found.append(summarise(path))
    return found


def summarise(path: Path) -> SessionSummary:
    try:
        folder = SessionFolder.open(path)
        record = read_session_file(folder)
        state = replay(read_journal(folder.journal))
        planned = len(shot_positions(record.plan, state.extended))
    except (RigError, OSError, ValueError, KeyError, TypeError) as exc:  # whatever is on disk
        return SessionSummary(path, "?", 0, 0, "unreadable", str(exc) or type(exc).__name__)
    outcome = state.outcome or ("interrupted" if state.requested else "not started")
    return SessionSummary(path, record.profile().name, planned, len(state.saved), outcome)
