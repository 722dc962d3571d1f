"""Where stackrig keeps things, per platform conventions (platformdirs).

``STACKRIG_HOME`` moves all of it under one folder (tests, portable installs).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "stackrig"


def _root(kind: str) -> Path | None:
    home = os.environ.get("STACKRIG_HOME")
    return Path(home) / kind if home else None


def config_dir() -> Path:
    """User profiles and settings."""
    return _root("config") or Path(platformdirs.user_config_dir(APP))


def log_dir() -> Path:
    return _root("log") or Path(platformdirs.user_log_dir(APP))


def captures_dir() -> Path:
    """Default root for capture sessions."""
    return _root("captures") or Path(platformdirs.user_pictures_dir()) / APP
