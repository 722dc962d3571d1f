"""`stackrig profile ...` as a user runs it (parser built here until rig/cli.py registers it)."""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
from pathlib import Path

import pytest

from rig.cli import profile as profile_cli
from rig.errors import ProfileError
from rig.profiles import load_profile, shipped_dir, user_dir


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stackrig")
    commands = parser.add_subparsers(dest="command")
    profile_cli.add_commands(commands)
    args = parser.parse_args(["profile", *argv])
    try:
        return int(args.handler(args))
    except ProfileError as exc:
        print(f"stackrig: error: {exc}", file=sys.stderr)
        return 1


def script(tmp_path: Path, name: str, body: str) -> str:
    """An executable 'editor' that gets the file to edit as $1."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_list_marks_user_and_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("new", "My Rig") == 0
    capsys.readouterr()
    assert run("list") == 0
    out = capsys.readouterr().out
    assert "my-rig" in out and "(user)" in out
    assert "simulated" in out and "(shipped)" in out


def test_show_prints_the_file_with_comments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("show", "simulated") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {shipped_dir() / 'simulated.toml'}")
    assert "# The simulated rig" in out


def test_new_from_template_and_refuses_to_overwrite(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("new", "Bench", "--from", "sangaboard-20x") == 0
    made = load_profile(user_dir() / "bench.toml")
    assert made.name == "Bench" and made.rail.protocol == "sangaboard"
    assert run("new", "bench") == 1
    assert "exists; choose another name" in capsys.readouterr().err


def test_copy_and_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("copy", "grbl-macro-mpe65", "mine") == 0
    capsys.readouterr()
    assert run("path", "mine") == 0
    assert capsys.readouterr().out.strip() == str(user_dir() / "mine.toml")
    assert load_profile(user_dir() / "mine.toml").optics.magnification == 3.0


def test_validate_by_name_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("validate", "simulated") == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "grbl-rail.toml"
    bad.write_text('schema_version = 2\nname = "x"\n[rail]\nbacklash_um = -5\nbacklash = 1\n')
    assert run("validate", str(bad)) == 1
    err = capsys.readouterr().err
    assert "grbl-rail.toml: rail.backlash_um = -5: must be >= 0" in err
    assert "grbl-rail.toml: rail.backlash = 1: unknown key; did you mean backlash_um?" in err


def test_unknown_profile_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("show", "nope") == 1
    assert "stackrig profile list" in capsys.readouterr().err


def test_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shared.toml"
    assert run("export", "lens-focus-mirrorless", str(out)) == 0
    assert run("import", str(out), "--name", "Friend's lens") == 0
    imported = load_profile(user_dir() / "friend-s-lens.toml")
    assert imported.rail.protocol == "lens" and imported.name == "Friend's lens"
    assert run("import", str(out), "--name", "Friend's lens") == 1
    assert run("import", str(out), "--name", "Friend's lens", "--force") == 0


def test_import_prints_migration_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.toml"
    old.write_text('schema_version = 1\nname = "old"\n[rail]\nbacklash = 0.05\n')
    assert run("import", str(old)) == 0
    assert "rail.backlash = 0.05 became rail.backlash_um = 50.0" in capsys.readouterr().err
    assert load_profile(user_dir() / "old.toml").rail.backlash_um == 50.0


def test_edit_saves_a_valid_change_with_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("copy", "simulated", "sim") == 0
    path = user_dir() / "sim.toml"
    before = path.read_text()
    editor = script(
        tmp_path, "ed.sh", 'sed -i "s/^backlash_um = .*/backlash_um = 75.0 # new/" "$1"'
    )
    monkeypatch.setenv("EDITOR", editor)
    assert run("edit", "sim") == 0
    assert load_profile(path).rail.backlash_um == 75.0
    assert "# new" in path.read_text()  # the user's text is kept as written
    assert (user_dir() / "sim.toml.bak").read_text() == before
    assert sorted(p.name for p in user_dir().iterdir()) == ["sim.toml", "sim.toml.bak"]


def test_edit_invalid_then_abandon_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("copy", "simulated", "sim") == 0
    path = user_dir() / "sim.toml"
    before = path.read_text()
    monkeypatch.setenv("EDITOR", script(tmp_path, "bad.sh", 'echo "[rail]\nspeed = 1" > "$1"'))
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\na\n"))
    assert run("edit", "sim") == 1
    err = capsys.readouterr().err
    assert "edit again (e) or abandon" in err and "abandoned" in err
    assert path.read_text() == before and not (user_dir() / "sim.toml.bak").exists()


def test_edit_again_then_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("copy", "simulated", "sim") == 0
    marker = tmp_path / "second"
    body = (
        f'if [ -e {marker} ]; then sed -i "s/^settle_s = .*/settle_s = 2.0/" "$1"; '
        f'else touch {marker}; sed -i "s/^settle_s = .*/settle_s = -2.0/" "$1"; fi'
    )
    monkeypatch.setenv("EDITOR", script(tmp_path, "twice.sh", body))
    monkeypatch.setattr(sys, "stdin", io.StringIO("e\n"))
    assert run("edit", "sim") == 0
    assert load_profile(user_dir() / "sim.toml").rail.settle_s == 2.0


def test_edit_without_stdin_abandons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("copy", "simulated", "sim") == 0
    before = (user_dir() / "sim.toml").read_text()
    monkeypatch.setenv("EDITOR", script(tmp_path, "bad.sh", 'echo "oops = =" > "$1"'))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run("edit", "sim") == 1
    assert (user_dir() / "sim.toml").read_text() == before


def test_edit_refuses_shipped_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("edit", "simulated") == 1
    assert "stackrig profile copy simulated NEW" in capsys.readouterr().err


def test_no_editor_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("copy", "simulated", "sim") == 0
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.setenv("PATH", os.devnull)
    assert run("edit", "sim") == 1
    assert "no editor found: set EDITOR" in capsys.readouterr().err
