"""``stackrig profile ...``: list, show, new, copy, edit, validate, export, import profiles."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rig import profiles
from rig.cli.common import UsageError, add_command, nonempty, path_arg, say
from rig.errors import ProfileError
from rig.outputs import check_folder_writable

EDITORS = ("editor", "nano", "vi")  # tried in order when $EDITOR is not set


SUMMARY = "saved rig profiles: list, show, new, copy, edit, validate, path, export, import"


def add_commands(commands: argparse._SubParsersAction) -> None:
    details = (
        "Rig profiles keep camera, rail, optics, plan, stacking and output settings so a shoot "
        f"can be repeated. User profiles live in {profiles.user_dir()}; shipped examples are "
        "read-only (copy them)."
    )
    profile = add_command(commands, "profile", SUMMARY, details)
    actions = profile.add_subparsers(dest="profile_action", metavar="ACTION", required=True)
    _add(actions, "list", _list, "user and shipped profiles")
    _add(actions, "show", _show, "print a profile", "NAME")
    new = _add(actions, "new", _new, "create a user profile", "NAME")
    new.add_argument(
        "--from", dest="template", type=nonempty, help="start from this profile (name or file)"
    )
    copy = _add(actions, "copy", _copy, "copy a profile to a new user profile", "SRC")
    copy.add_argument("dst", metavar="DST")
    _add(actions, "edit", _edit, "edit a user profile in $EDITOR, validated on save", "NAME")
    _add(actions, "validate", _validate, "check a profile and list every problem", "NAME_OR_PATH")
    _add(actions, "path", _path, "print a profile's file path", "NAME")
    export = _add(actions, "export", _export, "write a profile to a file", "NAME")
    export.add_argument("file", type=path_arg, metavar="FILE")
    imp = _add(actions, "import", _import, "add a profile file as a user profile", "FILE")
    imp.add_argument(
        "--name",
        dest="name_override",
        type=nonempty,
        help="name of the new profile (default: the file's name key)",
    )
    imp.add_argument("--force", action="store_true", help="replace a user profile of that name")


def _add(
    actions: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help_text: str,
    arg: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(
        name, help=help_text, description=help_text
    )
    if arg is not None:
        parser.add_argument("name", metavar=arg)
    parser.set_defaults(handler=handler)
    return parser


def _load(name_or_path: str) -> tuple[Path, profiles.Loaded]:
    path = profiles.find_profile(name_or_path)
    loaded = profiles.read_profile(path)
    for note in loaded.migrated:
        say(f"note: {note}", err=True)
    return path, loaded


def _list(args: argparse.Namespace) -> int:
    entries = profiles.list_profiles()
    user = {e.name for e in entries if not e.shipped}
    for entry in entries:
        mark = "shipped" if entry.shipped else "user"
        if entry.shipped and entry.name in user:
            mark = "shipped, hidden by the user profile"
        say(f"{entry.name:32} ({mark})  {_description(entry.path)}".rstrip())
    if not entries:
        say("no profiles yet: 'stackrig profile new NAME' creates one")
    return 0


def _description(path: Path) -> str:
    try:
        return profiles.load_profile(path).description
    except ProfileError:
        return "(not valid: run 'stackrig profile validate' on it)"


def _show(args: argparse.Namespace) -> int:
    path, _ = _load(args.name)
    say(f"# {path}")
    say(path.read_text(encoding="utf-8"), end="")
    return 0


def _create(profile: profiles.Profile, name: str, force: bool = False) -> Path:
    target = profiles.user_path(name)
    if target.exists() and not force:
        raise ProfileError(
            f"{target}: a profile named {target.stem!r} exists; choose another name, or "
            f"'stackrig profile edit {target.stem}'"
        )
    profile.name = name
    profiles.save_profile(profile, target)
    say(f"wrote {target}")
    return target


def _new(args: argparse.Namespace) -> int:
    base = _load(args.template)[1].profile if args.template else profiles.Profile(name=args.name)
    _create(base, args.name)
    return 0


def _copy(args: argparse.Namespace) -> int:
    _create(_load(args.name)[1].profile, args.dst)
    return 0


def _validate(args: argparse.Namespace) -> int:
    path, _ = _load(args.name)
    say(f"{path}: valid")
    return 0


def _path(args: argparse.Namespace) -> int:
    say(str(profiles.find_profile(args.name)))
    return 0


def _export(args: argparse.Namespace) -> int:
    target: Path = args.file
    if target.is_dir():
        raise UsageError(f"{target} is a folder; give a file name, e.g. {target / 'rig.toml'}")
    if target.suffix != profiles.SUFFIX:
        raise UsageError(f"{target}: give the file the {profiles.SUFFIX} extension")
    check_folder_writable(target.parent)
    profiles.save_profile(_load(args.name)[1].profile, target)
    say(f"wrote {target}")
    return 0


def _import(args: argparse.Namespace) -> int:
    loaded = profiles.read_profile(Path(args.name))
    for note in loaded.migrated:
        say(f"note: {note}", err=True)
    _create(loaded.profile, args.name_override or loaded.profile.name, args.force)
    return 0


def _edit(args: argparse.Namespace) -> int:
    path = profiles.find_profile(args.name)
    if path.resolve().parent != profiles.user_dir().resolve():
        raise ProfileError(
            f"{path} is not a user profile and is not edited in place: "
            f"'stackrig profile copy {args.name} NEW' makes an editable copy"
        )
    editor = _editor()
    original = path.read_text(encoding="utf-8")
    fd, name = tempfile.mkstemp(prefix=f"{path.stem}-", suffix=".toml")
    os.close(fd)
    draft = Path(name)
    try:
        draft.write_text(original, encoding="utf-8")
        return _edit_loop(editor, draft, path, original)
    finally:
        draft.unlink(missing_ok=True)


def _edit_loop(editor: list[str], draft: Path, path: Path, original: str) -> int:
    while True:
        _run_editor(editor, draft)
        try:
            text = draft.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ProfileError(
                f"the editor removed its copy ({draft}); {path} is unchanged: edit again"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(
                f"{draft} cannot be read back ({exc}); {path} is unchanged"
            ) from None
        if text == original:
            say(f"{path}: no changes")
            return 0
        try:
            loaded = profiles.loads_profile(text, path.name)
        except ProfileError as exc:
            say(str(exc), err=True)
            if _ask_reedit():
                continue
            say(f"{path}: abandoned; the profile is unchanged", err=True)
            return 1
        for note in loaded.migrated:
            say(f"note: {note}", err=True)
        profiles.write_text_atomic(path, text)  # the user's text, comments kept
        say(f"saved {path} (previous version in {path.name}.bak)")
        return 0


def _ask_reedit() -> bool:
    """True to edit again; abandons on 'a' or when nobody can answer (no stdin)."""
    while True:
        print("edit again (e) or abandon the changes (a)? [e/a] ", end="", file=sys.stderr)
        sys.stderr.flush()
        try:
            answer = sys.stdin.readline() if sys.stdin else ""
        except (OSError, ValueError):
            answer = ""
        if not answer:
            print(file=sys.stderr)
            return False
        if answer.strip().lower() in ("e", "a"):
            return answer.strip().lower() == "e"


def _editor() -> list[str]:
    chosen = os.environ.get("EDITOR", "").strip()
    if chosen:
        try:
            return shlex.split(chosen)
        except ValueError as exc:  # unbalanced quotes
            raise ProfileError(
                f"EDITOR={chosen!r} is not a command ({exc}): fix its quotes"
            ) from None
    for candidate in EDITORS:
        if shutil.which(candidate):
            return [candidate]
    raise ProfileError(
        "no editor found: set EDITOR (e.g. export EDITOR=nano), or install nano or vi"
    )


def _run_editor(editor: list[str], draft: Path) -> None:
    try:
        subprocess.run([*editor, str(draft)], check=True)
    except FileNotFoundError:
        raise ProfileError(
            f"editor {editor[0]!r} not found: set EDITOR to an installed editor"
        ) from None
    except subprocess.CalledProcessError as exc:
        raise ProfileError(
            f"editor {editor[0]!r} failed (exit {exc.returncode}); the profile is unchanged"
        ) from None
