"""The Sessions screen: past shoots under the captures folder, with how each ended; resume an
interrupted one, extend a finished one as its coverage verdict suggested, or re-stack one with
another method in the background."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from rig.errors import RigError
from rig.session.index import SessionSummary, list_sessions
from rig.session.journal import read_journal
from rig.tui.screens.dialogs import Choose
from rig.tui.widgets.footer import Footer
from stacking.settings import METHODS

log = logging.getLogger("stackrig.tui")


class SessionsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "resume", "Resume"),
        Binding("x", "extend", "Extend as suggested"),
        Binding("t", "restack", "Re-stack"),
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.sessions: list[SessionSummary] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"sessions in {self.root}", id="root")
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.add_columns("session", "profile", "shots", "result")
        self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.clear()
        try:
            self.sessions = list_sessions(self.root)
        except RigError as exc:
            self.sessions = []
            self.notify(str(exc), title="sessions", severity="error")
        for s in self.sessions:
            result = s.outcome if not s.problem else f"unreadable: {s.problem}"
            table.add_row(s.name, s.profile, f"{s.saved}/{s.planned}", result)
        if not self.sessions:
            self.query_one("#detail", Static).update("no sessions yet: shoot one from the plan (p)")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        s = self._selected()
        if s is None:
            return
        extend = _suggested(s.path)
        lines = [str(s.path)]
        if s.resumable:
            lines.append(f"r resumes it: {s.planned - s.saved} shots missing")
        if extend:
            lines.append(
                "x extends it as its coverage verdict suggested: "
                + ", ".join(f"{n} at the {end} end" for end, n in extend.items())
            )
        self.query_one("#detail", Static).update("\n".join(lines))

    def _selected(self) -> SessionSummary | None:
        row = self.query_one("#sessions", DataTable).cursor_row
        return self.sessions[row] if 0 <= row < len(self.sessions) else None

    def action_resume(self) -> None:
        s = self._selected()
        if s is None or not s.resumable:
            self.notify("pick a session that did not finish", severity="warning")
            return
        app: Any = self.app
        app.resume_session(s.path, {})

    def action_extend(self) -> None:
        s = self._selected()
        extend = _suggested(s.path) if s is not None else {}
        if s is None or not extend:
            self.notify("that session's verdict suggested no extension", severity="warning")
            return
        app: Any = self.app
        app.resume_session(s.path, extend)

    def action_restack(self) -> None:
        """Stack the session's frames again with another method, in the background, beside
        its stack (``stack-METHOD.tif``), reusing the session's alignments."""
        s = self._selected()
        if s is None or s.problem:
            self.notify("pick a session to re-stack", severity="warning")
            return

        def chosen(method: str | None) -> None:
            if method is not None:
                self.app.run_worker(lambda: self._restack(s.path, method), thread=True)

        self.app.push_screen(Choose("Re-stack with", list(METHODS)), chosen)

    def _restack(self, path: Path, method: str) -> None:
        """On a worker thread: the app is told how it goes through call_from_thread."""
        from rig.jobs import restack
        from rig.session.folder import SessionFolder, read_session_file
        from stacking.errors import StackingError

        app = self.app
        try:
            folder = SessionFolder.open(path)
            settings = replace(read_session_file(folder).profile().stack_settings(), method=method)
            report = folder.outputs.report
            job = restack.prepare(
                [folder.frames],
                path / f"stack-{method}.tif",
                settings=settings,
                reuse=report if report.is_file() else None,
            )
            total = len(job.frames)

            def progress(done: Any) -> None:
                if done.handled % 5 == 0 or done.handled == total:
                    app.call_from_thread(app.notify, f"re-stack: {done.handled}/{total} frames")

            outcome = restack.run(job, progress)
        except (RigError, StackingError) as exc:
            app.call_from_thread(app.notify, str(exc), title="re-stack failed", severity="error")
            return
        except Exception as exc:  # a bug: one line here, the traceback in the log
            log.exception("re-stack of %s failed", path)
            app.call_from_thread(app.notify, f"internal error: {exc} (details in the log)",
                                 title="re-stack failed", severity="error")  # fmt: skip
            return
        app.call_from_thread(app.notify, f"re-stacked {path.name} -> {outcome.outputs.image}")


def _suggested(path: Path) -> dict[str, int]:
    """The extension the session's last verdict suggested (none for an unfinished one)."""
    try:
        events = read_journal(path / "journal.jsonl")
    except (RigError, OSError, ValueError):  # a damaged journal suggests nothing
        return {}
    ends = [e for e in events if e.type == "session_finished"]
    coverage = ends[-1].get("coverage") if ends else None
    if not isinstance(coverage, dict) or ends[-1].get("outcome") != "done":
        return {}
    pairs = (("first", coverage.get("extend_first")), ("last", coverage.get("extend_last")))
    return {end: int(n) for end, n in pairs if isinstance(n, int) and n > 0}
