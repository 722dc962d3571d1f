"""The Profiles screen: every profile (yours and the shipped examples), one shown as its file;
an editor of its keys that validates as you type; save the rig setup in use as a profile.

Shipped profiles are read-only: saving one writes a user copy under a new name. The editor
shows the schema's own messages under the fields they concern and saves nothing invalid.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Header, Input, Label, Static

from rig import profiles
from rig.errors import ProfileError
from rig.profiles import Entry, Loaded, Profile
from rig.profiles.schema import OUTPUTS, SCHEMA_VERSION, SECTIONS, TOP_KEYS, Check
from rig.tui.screens.dialogs import Confirm
from rig.tui.widgets.footer import Footer

# -- the keys of a profile as editable text -----------------------------------------------------


@dataclass(frozen=True)
class Field:
    path: str  # "rail.speed_mm_s"; "name" for a top-level key
    check: Check
    default: Any  # None: unset

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0] if "." in self.path else ""

    @property
    def widget_id(self) -> str:
        return "f-" + self.path.replace(".", "-")  # keys hold no "-", so this stays unambiguous


def _fields() -> list[Field]:
    fields = [Field(key, Check("str"), "") for key in ("name", "description", "notes")]
    for section, cls in SECTIONS.items():
        defaults = cls()  # every section has a default for every key
        for f in dataclasses.fields(cls):
            check = f.metadata["check"]
            fields.append(Field(f"{section}.{f.name}", check, getattr(defaults, f.name)))
    return fields


FIELDS = _fields()
BY_PATH = {f.path: f for f in FIELDS}
_LEAVE_OUT = object()  # an empty field: the key is left out of the file, so its default holds


def literal(value: Any) -> str:
    """``value`` as a one-line TOML value (tables inline, arrays on one line)."""
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {literal(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else literal(key)


def to_text(field: Field, value: Any) -> str:
    """What the field's Input shows: text keys as plain text, the others as TOML values."""
    if value is None:
        return ""
    if field.check.kind == "str" and isinstance(value, str):
        return value
    return literal(value)


def from_text(field: Field, text: str) -> Any:
    """The value the text stands for, or ``_LEAVE_OUT``. Text that is no TOML value goes on as a
    string, so the schema names the problem in its own words ("must be a number")."""
    if field.path == "name":
        return text  # required: an empty one gets the schema's "must not be empty"
    if field.check.kind == "str":
        return text if text else _LEAVE_OUT
    if not text.strip():
        return _LEAVE_OUT
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, KeyError):
        return text


def texts_of(data: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Field texts from a profile's TOML data, and the keys that have no field (not kept)."""
    texts: dict[str, str] = {}
    dropped = [k for k in data if k not in TOP_KEYS and k != "schema_version"]
    for field in FIELDS:
        table = data.get(field.section, {}) if field.section else data
        if not isinstance(table, dict):
            continue
        texts[field.path] = to_text(field, table.get(field.key))
    for section in SECTIONS:
        table = data.get(section)
        if table is None:
            continue
        if not isinstance(table, dict):
            dropped.append(section)
            continue
        dropped += [f"{section}.{k}" for k in table if f"{section}.{k}" not in BY_PATH]
    return texts, dropped


def data_of(texts: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for field in FIELDS:
        value = from_text(field, texts.get(field.path, ""))
        if value is _LEAVE_OUT:
            continue
        table = data.setdefault(field.section, {}) if field.section else data
        table[field.key] = value
    return data


@dataclass
class Checked:
    profile: Profile | None  # None while anything is wrong
    problems: dict[str, list[str]]  # field path (or a section name, or "") -> the schema's lines


def check_texts(texts: dict[str, str], source: str) -> Checked:
    """Validate the fields exactly as a file is validated (the same messages), per field."""
    try:
        loaded = profiles.loads_profile(tomli_w.dumps(data_of(texts)), source)
    except ProfileError as exc:
        return Checked(None, place(str(exc), source))
    return Checked(loaded.profile, {})


def place(message: str, source: str) -> dict[str, list[str]]:
    """Each ``source: path = value: what is allowed`` line under the field its path names."""
    placed: dict[str, list[str]] = {}
    for line in message.splitlines():
        text = line.removeprefix(f"{source}: ")
        head = re.split(r" = |: ", text, maxsplit=1)[0]
        owner = next(
            (f.path for f in FIELDS if head == f.path or head.startswith(f.path + ".")),
            head if head in SECTIONS else "",  # a note about a whole section goes under it
        )
        placed.setdefault(owner, []).append(text)
    return placed


def describe(field: Field) -> str:
    """What the field takes, for the hint line."""
    c = field.check
    what = {
        "float": "a number",
        "int": "a whole number",
        "bool": "true or false",
        "strtable": 'a table of setting = "value", e.g. { iso = "100" }',
        "outputs": f'a list of {", ".join(OUTPUTS)}, e.g. ["tiff"]',
    }.get(c.kind, "text, no quotes needed")
    if c.choices:
        what = "one of " + ", ".join(c.choices)
    bounds = [f"{op} {v:g}" for op, v in ((">=", c.ge), (">", c.gt), ("<=", c.le)) if v is not None]
    if bounds:
        what += " " + ", ".join(bounds)
    if field.path == "name":
        return "name: what the profile is called (the title bar; {profile} in folder names)"
    if field.default is None:
        empty = "not set"
    else:
        shown = to_text(field, field.default)
        empty = f"the default ({shown})" if shown else "the default (empty)"
    return f"{field.path}: {what}; left empty: {empty}"


def _placeholder(field: Field) -> str:
    """What an empty field means, shown in it."""
    if field.default is None:
        return "(not set)"
    shown = to_text(field, field.default)
    return f"(default: {shown})" if shown else "(default: empty)"


# -- saving -------------------------------------------------------------------------------------


def is_shipped_path(path: Path) -> bool:
    return path.resolve().parent == profiles.shipped_dir().resolve()


def write_profile(profile: Profile, path: Path) -> None:
    """Atomic save (the store keeps a .bak); a shipped file is never the target."""
    if is_shipped_path(path):
        raise ProfileError(f"{path} is a shipped profile and is not written: save it as a copy")
    profiles.save_profile(profile, path)


def save_as(screen: Screen[Any], profile: Profile, name: str, done: Callable[[Path], None]) -> None:
    """Save ``profile`` as the user profile ``name``; asks first if that name is taken."""
    try:
        target = profiles.user_path(name)
    except ProfileError as exc:
        screen.notify(str(exc), title="not saved", severity="error")
        return

    def write() -> None:
        copied = copy.deepcopy(profile)  # the profile in use stays as it is
        copied.name = name
        try:
            write_profile(copied, target)
        except ProfileError as exc:
            screen.notify(str(exc), title="not saved", severity="error", timeout=12)
            return
        screen.notify(f"saved {target}")
        done(target)

    shadowed = (profiles.shipped_dir() / target.name).is_file()
    if not target.exists() and not shadowed:
        write()
        return
    if target.exists():
        question = f"A profile named {target.stem!r} exists ({target}). Replace it?"
    else:
        question = (
            f"A shipped profile is named {target.stem!r}; yours would be used instead of it "
            "wherever that name is given (the shipped file is kept). Save it?"
        )

    def answer(yes: bool | None) -> None:
        if yes:
            write()

    screen.app.push_screen(Confirm(question, "Save", "Cancel"), answer)


class NamePrompt(ModalScreen[str | None]):
    """Asks for a profile name; Enter saves, Esc cancels."""

    DEFAULT_CSS = """
    NamePrompt { align: center middle; }
    NamePrompt > Vertical {
        width: 70; max-width: 95%; height: auto; padding: 1 2; border: thick $accent;
        background: $surface;
    }
    NamePrompt Input { margin: 1 0; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            yield Input(self.value, id="name", placeholder="e.g. my-macro-rig")
            yield Static("Enter saves, Esc cancels. The file name keeps a-z, 0-9, - and _.")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if not name:
            self.notify("type a name first", severity="warning")
            return
        self.dismiss(name)


# -- the editor ---------------------------------------------------------------------------------


class ProfileEditor(Screen[Path | None]):
    """Every key of one profile, grouped by section; dismisses with the last path saved."""

    DEFAULT_CSS = """
    ProfileEditor #pe-title { padding: 0 1; text-style: bold; }
    ProfileEditor #pe-form { height: 1fr; padding: 0 1; }
    ProfileEditor #pe-grid {
        layout: grid; grid-size: 2; grid-columns: 23 1fr; grid-rows: auto; height: auto;
    }
    ProfileEditor .pe-heading { column-span: 2; text-style: bold; padding-top: 1; }
    ProfileEditor .pe-problem { color: $error; text-style: bold; }
    ProfileEditor #pe-hint, ProfileEditor #pe-status { padding: 0 1; height: auto; }
    ProfileEditor #pe-hint { border-top: solid $primary; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+n", "save_as", "Save as new"),
    ]

    def __init__(self, entry: Entry, texts: dict[str, str], notes: list[str]) -> None:
        super().__init__()
        self.entry, self.notes = entry, notes
        self.initial = {f.path: texts.get(f.path, "") for f in FIELDS}
        self.baseline = dict(self.initial)
        self.checked = Checked(None, {})
        self.saved: Path | None = None
        self.shown: dict[str, str] = {}  # field path or section ("" for none) -> problem shown
        self.lines: dict[str, tuple[Static, Static]] = {}  # problem rows mounted, same keys
        self.inputs: dict[str, Input] = {}
        self.pending = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._title(), id="pe-title", markup=False)
        # one grid, and problem lines only mounted when there is one: a widget per key is
        # already some 100, and each costs time to style on a small computer
        with VerticalScroll(id="pe-form"), Grid(id="pe-grid"):
            section = ""
            for field in FIELDS:
                if field.section != section:
                    section = field.section
                    heading = f"[{section}]"
                    yield Static(heading, id=f"h-{section}", classes="pe-heading", markup=False)
                yield Label(field.key, markup=False)
                yield Input(
                    self.initial[field.path],
                    id=field.widget_id,
                    compact=True,
                    placeholder=_placeholder(field),
                )
        yield Static(self._first_hint(), id="pe-hint", markup=False)
        yield Static("", id="pe-status", markup=False)
        yield Footer()

    def _title(self) -> str:
        if self.entry.shipped:
            return f"{self.entry.name}: shipped, read-only; ctrl+s saves a copy under a new name"
        return f"{self.entry.name}: {self.entry.path}"

    def _first_hint(self) -> str:
        lines = list(self.notes)
        if not self.entry.shipped:
            kept = f"{self.entry.path.name}.bak"
            lines.append(f"saving rewrites the file without its comments; {kept} keeps the last")
        return "\n".join(lines) or "Tab moves between keys; empty keys take their default."

    def on_mount(self) -> None:
        self.inputs = {f.path: self.query_one(f"#{f.widget_id}", Input) for f in FIELDS}
        self.validate()
        self.inputs[FIELDS[0].path].focus()

    def texts(self) -> dict[str, str]:
        return {path: widget.value for path, widget in self.inputs.items()}

    @property
    def dirty(self) -> bool:
        return self.texts() != self.baseline

    def on_input_changed(self, event: Input.Changed) -> None:
        if not self.pending:  # a burst of changes (the first refresh sends one per key) checks once
            self.pending = True
            self.call_after_refresh(self.validate)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        field = next((f for f in FIELDS if f.widget_id == event.widget.id), None)
        if field is not None:
            self.query_one("#pe-hint", Static).update(describe(field))
            pair = self.lines.get(field.path)
            if pair is not None and pair[1].display:  # the problem under it in view too
                self.call_after_refresh(pair[1].scroll_visible, animate=False)

    def validate(self) -> Checked:
        self.pending = False
        self.checked = check_texts(self.texts(), self.entry.path.name)
        problems = self.checked.problems
        for owner in {*problems, *self.shown}:
            text = "\n".join(f"! {line}" for line in problems.get(owner, []))
            if self.shown.get(owner, "") != text:
                self._show_problem(owner, text)
        self._status()
        return self.checked

    def _show_problem(self, owner: str, text: str) -> None:
        self.shown[owner] = text
        pair = self.lines.get(owner)
        if pair is None:
            # under the value, in its column: a spanning cell would be sized to the first column
            pair = self.lines[owner] = (Static(), Static(classes="pe-problem", markup=False))
            grid = self.query_one("#pe-grid", Grid)
            if owner in BY_PATH:
                grid.mount(*pair, after=self.inputs[owner])
            elif owner in SECTIONS:
                grid.mount(*pair, after=self.query_one(f"#h-{owner}"))
            else:
                grid.mount(*pair, before=0)
        pair[1].update(text)
        for cell in pair:
            cell.display = bool(text)

    def _status(self) -> None:
        count = sum(len(lines) for lines in self.checked.problems.values())
        edited = "edited, not saved" if self.dirty else "no changes"
        if count:
            text = f"{count} problem(s), lines marked !: fix them to save ({edited})"
        else:
            text = f"valid ({edited})"
        self.query_one("#pe-status", Static).update(text)

    def problem_text(self, path: str) -> str:
        """What is shown under a field, or a section (tests read it)."""
        return self.shown.get(path, "")

    def _valid(self) -> Profile | None:
        checked = self.validate()
        if checked.profile is None:
            self.notify("not saved: fix the lines marked ! first", severity="error")
            first = next((f for f in FIELDS if f.path in checked.problems), None)
            if first is not None:
                self.inputs[first.path].focus()
            return None
        return checked.profile

    def action_save(self) -> None:
        if self.entry.shipped:
            self.action_save_as()
            return
        profile = self._valid()
        if profile is None:
            return
        try:
            write_profile(profile, self.entry.path)
        except ProfileError as exc:
            self.notify(str(exc), title="not saved", severity="error", timeout=12)
            return
        self.notify(f"saved {self.entry.path}")
        self._saved(self.entry.path)

    def action_save_as(self) -> None:
        profile = self._valid()
        if profile is None:
            return
        suggested = f"{self.entry.name}-copy" if self.entry.shipped else ""

        def named(name: str | None) -> None:
            if name:
                save_as(self, profile, name, lambda path: self._saved(path, name))

        self.app.push_screen(NamePrompt("Save as a new user profile named:", suggested), named)

    def _saved(self, path: Path, name: str | None = None) -> None:
        self.saved = path
        if name is not None:  # now editing the copy: the next ctrl+s saves it in place
            self.entry = Entry(path.stem, path, False)
            self.inputs["name"].value = name
            self.query_one("#pe-title", Static).update(self._title())
        self.baseline = self.texts()
        self._status()

    def action_back(self) -> None:
        if not self.dirty:
            self.dismiss(self.saved)
            return

        def answer(leave: bool | None) -> None:
            if leave:
                self.dismiss(self.saved)

        self.app.push_screen(
            Confirm("Leave without saving? The edits not saved are lost.", "Leave", "Stay"),
            answer,
        )


# -- the list -----------------------------------------------------------------------------------


@dataclass
class Row:
    entry: Entry
    loaded: Loaded | None  # None: the file does not load
    problem: str  # why it does not load
    hidden: bool  # a shipped profile under a user profile of the same name


def read_rows() -> list[Row]:
    rows = []
    entries = profiles.list_profiles()
    user = {e.name for e in entries if not e.shipped}
    for entry in entries:
        try:
            loaded, problem = profiles.read_profile(entry.path), ""
        except ProfileError as exc:
            loaded, problem = None, str(exc)
        rows.append(Row(entry, loaded, problem, entry.shipped and entry.name in user))
    return rows


def _same(loaded: Loaded | None, profile: Profile) -> bool:
    """Whether the file holds exactly ``profile`` (the one in use may carry changes)."""
    if loaded is None:
        return False
    return profiles.profile_to_dict(loaded.profile) == profiles.profile_to_dict(profile)


class ProfilesScreen(Screen[None]):
    """Every profile; the selected one as its file; edit, use, save the setup in use."""

    DEFAULT_CSS = """
    ProfilesScreen #pf-table { height: auto; max-height: 45%; }
    ProfilesScreen #pf-view { height: 1fr; border-top: solid $primary; padding: 0 1; }
    ProfilesScreen #pf-info { margin-bottom: 1; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("e", "edit", "Edit"),
        Binding("u", "use", "Use this"),
        Binding("s", "save_current", "Save setup as"),
        Binding("f5", "reload", "Reload", show=False),
    ]

    def __init__(self, profile_in_use: Profile, in_use_path: Path | None = None) -> None:
        super().__init__()
        self.profile_in_use, self.in_use_path = profile_in_use, in_use_path
        self.rows: list[Row] = []
        self.in_use: int | None = None  # the row of the profile in use

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="pf-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="pf-view"):
            yield Static("", id="pf-info", markup=False)
            yield Static("", id="pf-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pf-table", DataTable).add_columns("", "profile", "kind", "state")
        self.action_reload()

    def current(self) -> Profile:
        """The profile in use: the app's (it may carry this session's changes), if it has one."""
        profile = getattr(self.app, "profile", None)
        return profile if isinstance(profile, Profile) else self.profile_in_use

    def _find_in_use(self) -> int | None:
        if self.in_use_path is not None:
            for i, row in enumerate(self.rows):
                if row.entry.path == self.in_use_path:
                    return i
        profile = self.current()
        named = [
            i
            for i, r in enumerate(self.rows)
            if r.loaded is not None and r.loaded.profile.name == profile.name and not r.hidden
        ]
        exact = [i for i in named if _same(self.rows[i].loaded, profile)]
        if exact:
            return exact[0]
        return named[0] if len(named) == 1 else None  # several of that name: do not guess

    def action_reload(self, select: Path | None = None) -> None:
        table = self.query_one("#pf-table", DataTable)
        before = self.selected() if self.rows else None
        keep = select or (before.entry.path if before is not None else None)
        self.rows = read_rows()
        self.in_use = self._find_in_use()
        table.clear()
        for i, row in enumerate(self.rows):
            mark = "*" if i == self.in_use else ("!" if row.loaded is None else "")
            table.add_row(mark, row.entry.name, self._kind(row), self._state(i))
        index = next((i for i, r in enumerate(self.rows) if r.entry.path == keep), 0)
        if self.rows:
            table.move_cursor(row=index)
        self._show()

    def _kind(self, row: Row) -> str:
        return "shipped" if row.entry.shipped else "user"

    def _state(self, i: int) -> str:
        row = self.rows[i]
        if i == self.in_use:
            return "in use" if _same(row.loaded, self.current()) else "in use, changed"
        if row.loaded is None:
            return "not valid"
        return "hidden by yours" if row.hidden else ""

    def selected(self) -> Row | None:
        row = self.query_one("#pf-table", DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def _show(self) -> None:
        info, text = self.query_one("#pf-info", Static), self.query_one("#pf-text", Static)
        row = self.selected()
        if row is None:
            info.update(f"no profiles yet in {profiles.user_dir()}: s saves the setup in use")
            text.update("")
            return
        info.update("\n".join(self._about(row)))
        try:
            text.update(row.entry.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            text.update(f"cannot read it: {exc}")

    def _about(self, row: Row) -> list[str]:
        e = row.entry
        if e.shipped:  # where the package lives says nothing to the operator
            lines = [f"{e.name}: shipped with stackrig, read-only (e edits a copy)"]
        else:
            lines = [f"{e.name}: your profile (e edits it)  {_home_short(e.path)}"]
        if row.hidden:
            lines.append(f"your profile {e.name!r} is used instead of this one by that name")
        if self.in_use is not None and self.rows[self.in_use] is row:
            state = self._state(self.in_use)
            lines.append(state + (": s saves this session's values" if "changed" in state else ""))
        if row.loaded is None:
            lines += ["not valid:", *row.problem.splitlines()]
        else:
            lines += row.loaded.migrated
            if row.loaded.profile.description:
                lines.append(row.loaded.profile.description)
        return lines

    def action_edit(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.loaded is not None:
            texts, dropped = texts_of(profiles.profile_to_dict(row.loaded.profile))
            notes = list(row.loaded.migrated)
        else:
            data = _raw(row.entry.path)
            if data is None:
                self.notify(
                    f"{row.problem.splitlines()[0]}: it is not TOML at schema {SCHEMA_VERSION}; "
                    f"fix it with 'stackrig profile edit {row.entry.name}'",
                    severity="error",
                    timeout=12,
                )
                return
            texts, dropped = texts_of(data)
            notes = []
        if dropped:
            notes.append(f"not kept when saved (no such keys): {', '.join(dropped)}")
        self.app.push_screen(ProfileEditor(row.entry, texts, notes), self._edited)

    def _edited(self, saved: Path | None) -> None:
        self.action_reload(select=saved)

    def action_use(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.loaded is None:
            self.notify(f"{row.entry.name} is not valid: e shows what to fix", severity="error")
            return
        use = getattr(self.app, "use_profile", None)
        if not callable(use):
            self.notify(
                "profiles cannot be switched here: restart with --profile " + row.entry.name,
                severity="warning",
            )
            return
        if use(row.loaded.profile, row.entry.path) is False:  # the app refused (it says why)
            return
        self.profile_in_use, self.in_use_path = row.loaded.profile, row.entry.path
        self.action_reload()

    def action_save_current(self) -> None:
        profile = self.current()
        row = self.rows[self.in_use] if self.in_use is not None else None
        suggested = ""
        if row is not None:
            suggested = row.entry.name + ("-copy" if row.entry.shipped else "")

        def named(name: str | None) -> None:
            if name:
                save_as(self, profile, name, lambda path: self.action_reload(select=path))

        self.app.push_screen(
            NamePrompt(f"Save the setup in use ({profile.name}) as the user profile:", suggested),
            named,
        )


def _raw(path: Path) -> dict[str, Any] | None:
    """A profile that does not validate, as TOML data, to fix in the editor; None if it is no
    TOML, or is at another schema version (the CLI's editor takes those)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return data if data.get("schema_version") == SCHEMA_VERSION else None


def _home_short(path: Path) -> str:
    """``path`` with the home folder as ``~``, as the operator would type it."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)
