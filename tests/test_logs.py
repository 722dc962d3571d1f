"""The command logs to a rotating file under the (test) log dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.cli import main
from rig.paths import log_dir


def test_errors_are_logged_to_the_log_file(tmp_path: Path) -> None:
    assert main(["stack", str(tmp_path / "missing"), "-o", str(tmp_path / "o.tif")]) == 1
    text = (log_dir() / "stackrig.log").read_text()
    assert "stackrig stack" in text and "no such file" in text


def test_home_override_moves_every_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rig import paths

    monkeypatch.setenv("STACKRIG_HOME", str(tmp_path))
    assert paths.config_dir() == tmp_path / "config"
    assert paths.captures_dir() == tmp_path / "captures"
