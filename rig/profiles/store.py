"""Saved rig profiles: load (with schema migration), save atomically, find by name, override.

A profile is a TOML file; :mod:`rig.profiles.schema` defines what it holds. User profiles live in
``config_dir()/profiles``; the examples shipped with stackrig in the repository's ``profiles/``.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from rig import paths
from rig.errors import ProfileError
from rig.profiles.schema import (
    SCHEMA_VERSION,
    Problems,
    Profile,
    check_profile,
    parse_profile,
    profile_to_dict,
)
from stacking.errors import StackingError
from stacking.files import atomic_write

__all__ = [
    "SCHEMA_VERSION",
    "SUFFIX",
    "Entry",
    "Loaded",
    "Profile",
    "dumps_profile",
    "find_profile",
    "list_profiles",
    "load_profile",
    "loads_profile",
    "profile_to_dict",
    "read_profile",
    "safe_name",
    "save_profile",
    "shipped_dir",
    "user_dir",
    "user_path",
    "with_overrides",
    "write_session_copy",
    "write_text_atomic",
]

SUFFIX = ".toml"
MAX_NAME = 64
MAX_BYTES = 1_000_000  # a profile is a few kB of text


@dataclass(frozen=True)
class Loaded:
    profile: Profile
    migrated: list[str]  # what a schema migration changed, for the operator to read


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    shipped: bool


def user_dir() -> Path:
    return paths.config_dir() / "profiles"


def shipped_dir() -> Path:
    """The example profiles: packaged into the wheel, or the repository's profiles/ folder."""
    packaged = Path(__file__).resolve().parents[1] / "shipped_profiles"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "profiles"


def safe_name(name: str) -> str:
    """A file name stem for ``name``: lowercase ``[a-z0-9-_]``, so no separators or traversal."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^a-z0-9_-]+", "-", ascii_name.lower()).strip("-_")[:MAX_NAME].strip("-_")
    if not stem:
        raise ProfileError(
            f"profile name {name!r} has no usable characters: use letters, digits, - or _"
        )
    return stem


# -- schema migration ----------------------------------------------------------------------


def _v1_to_v2(data: dict[str, Any]) -> list[str]:
    """v1 kept rail.backlash in mm, rail.speed in mm/s and rail.settle_ms; v2 names units."""
    rail = data.get("rail")
    if not isinstance(rail, dict):
        return []
    notes = []
    moves: list[tuple[str, str, Callable[[float], float], str]] = [
        ("backlash", "backlash_um", lambda mm: mm * 1000.0, "mm -> um"),
        ("speed", "speed_mm_s", lambda v: v, "renamed"),
        ("settle_ms", "settle_s", lambda ms: ms / 1000.0, "ms -> s"),
    ]
    for old, new, convert, what in moves:
        if old not in rail or new in rail:
            continue  # a file with both keys is reported as having an unknown key
        value = rail.pop(old)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        rail[new] = convert(value) if number else value
        notes.append(f"rail.{old} = {value} became rail.{new} = {rail[new]} ({what})")
    return notes


MIGRATIONS: dict[int, Callable[[dict[str, Any]], list[str]]] = {1: _v1_to_v2}


def _migrate(data: dict[str, Any], source: str) -> list[str]:
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ProfileError(
            f"{source}: schema_version = {version if 'schema_version' in data else 'missing'}: "
            f"must be a whole number 1..{SCHEMA_VERSION}; put schema_version = {SCHEMA_VERSION} "
            "at the top"
        )
    if version > SCHEMA_VERSION:
        raise ProfileError(
            f"{source}: schema_version = {version}: written by a newer stackrig (this one reads "
            f"up to {SCHEMA_VERSION}); upgrade stackrig to use this profile"
        )
    notes = []
    for step in range(version, SCHEMA_VERSION):
        changed = MIGRATIONS[step](data)
        notes += [f"{source}: schema {step} -> {step + 1}: {c}" for c in changed]
    data["schema_version"] = SCHEMA_VERSION
    return notes


# -- load and save -------------------------------------------------------------------------


def loads_profile(text: str, source: str = "<profile>") -> Loaded:
    """Parse, migrate and validate TOML text; ``source`` names it in messages."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError is a ValueError
        raise ProfileError(f"{source}: not valid TOML: {exc}; fix the syntax") from None
    return _from_dict(data, source)


def _from_dict(data: dict[str, Any], source: str) -> Loaded:
    notes = _migrate(data, source)
    data.pop("schema_version")
    return Loaded(parse_profile(data, Problems(source)), notes)


def read_profile(path: Path) -> Loaded:
    """Load ``path`` with the notes of any schema migration."""
    try:
        with open(path, "rb") as fh:  # bounded: /dev/zero or a disk image is not read whole
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    if len(data) > MAX_BYTES:
        raise ProfileError(f"{path}: over {MAX_BYTES // 1000} kB, not a profile; check the path")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    return loads_profile(text, Path(path).name)


def load_profile(path: Path) -> Profile:
    return read_profile(path).profile


def dumps_profile(profile: Profile, source: str = "<profile>") -> str:
    check_profile(profile, source)  # a field left None in code has no TOML form to check
    data = profile_to_dict(profile)
    _from_dict(copy.deepcopy(data), source)  # never write a profile that would not load
    return tomli_w.dumps(data)


def save_profile(profile: Profile, path: Path) -> None:
    """Write atomically; the previous version, if any, is kept as ``<file>.bak``."""
    write_text_atomic(Path(path), dumps_profile(profile, Path(path).name))


def write_text_atomic(path: Path, text: str) -> None:
    """Keep the previous version as ``.bak``, then write atomically (old or new, never half)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
        atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    except StackingError as exc:
        raise ProfileError(str(exc)) from exc
    except OSError as exc:
        raise ProfileError(
            f"{path} cannot be written ({exc.strerror or exc}): check the folder and its "
            "permissions"
        ) from exc


# -- finding profiles ----------------------------------------------------------------------


def list_profiles() -> list[Entry]:
    """User profiles, then shipped ones, each sorted by name."""
    found = []
    for folder, shipped in ((user_dir(), False), (shipped_dir(), True)):
        if folder.is_dir():
            found += [Entry(p.stem, p, shipped) for p in sorted(folder.glob("*" + SUFFIX))]
    return found


def find_profile(name_or_path: str) -> Path:
    """A profile file: a path to one, else a user profile, else a shipped one."""
    given = Path(name_or_path)
    if name_or_path.endswith(SUFFIX) or os.sep in name_or_path:
        if not given.is_file():
            raise ProfileError(f"{given}: no such file; check the path")
        return given
    stem = safe_name(name_or_path)
    for folder in (user_dir(), shipped_dir()):
        if (folder / (stem + SUFFIX)).is_file():
            return folder / (stem + SUFFIX)
    raise ProfileError(
        f"no profile named {name_or_path!r}: see 'stackrig profile list', or create one with "
        f"'stackrig profile new {stem}'"
    )


def user_path(name: str) -> Path:
    return user_dir() / (safe_name(name) + SUFFIX)


# -- for the rest of the program -----------------------------------------------------------


def with_overrides(
    profile: Profile, overrides: Mapping[str, Any], source: str = "overrides"
) -> Profile:
    """``profile`` with ``{"rail.speed_mm_s": 2.0, ...}`` applied, validated as a whole."""
    data = profile_to_dict(profile)
    for key, value in overrides.items():
        *sections, last = key.split(".")
        table = data
        for section in sections:
            table = table.setdefault(section, {})
            if not isinstance(table, dict):
                raise ProfileError(f"override {key} = {value!r}: {section} is not a table")
        table[last] = value
    return _from_dict(data, source).profile


def write_session_copy(profile: Profile, folder: Path) -> Path:
    """The exact profile a session used, as ``folder/profile.toml``."""
    target = Path(folder) / "profile.toml"
    save_profile(profile, target)
    return target
