"""Shared fixtures. Plain helpers live in helpers.py (import them from there)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import textured_scene


@pytest.fixture
def scene() -> np.ndarray:
    return textured_scene()


@pytest.fixture(autouse=True)
def _private_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep logs, profiles and captures of every test out of the user's real folders."""
    monkeypatch.setenv("STACKRIG_HOME", str(tmp_path_factory.mktemp("home")))
