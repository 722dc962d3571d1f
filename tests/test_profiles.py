"""Rig profiles: shipped examples, validation messages, migration, atomic save, fuzzing."""

from __future__ import annotations

import copy
import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.errors import ProfileError
from rig.profiles import (
    Profile,
    load_profile,
    loads_profile,
    profile_to_dict,
    read_profile,
    safe_name,
    save_profile,
    shipped_dir,
    with_overrides,
    write_session_copy,
)
from rig.profiles import schema as profile_schema

SHIPPED = sorted(shipped_dir().glob("*.toml"))
GOOD = (shipped_dir() / "grbl-macro-mpe65.toml").read_text(encoding="utf-8")


def problems_of(text: str, source: str = "grbl-rail.toml") -> str:
    with pytest.raises(ProfileError) as info:
        loads_profile(text, source)
    return str(info.value)


def with_keys(section: str, **values: Any) -> str:
    """The GRBL example with ``values`` set in ``section``."""
    raw = profile_to_dict(loads_profile(GOOD).profile)
    raw[section].update(values)
    return tomli_w.dumps(raw)


# -- shipped profiles ----------------------------------------------------------------------


def test_the_required_examples_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"grbl-macro-mpe65", "sangaboard-20x", "lens-focus-mirrorless", "simulated"} <= names
    protocols = {load_profile(p).rail.protocol for p in SHIPPED}
    assert {"grbl", "sangaboard", "lens"} <= protocols


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_profile_round_trips(path: Path, tmp_path: Path) -> None:
    loaded = read_profile(path)
    assert loaded.migrated == []
    copy = tmp_path / path.name
    save_profile(loaded.profile, copy)
    assert load_profile(copy) == loaded.profile
    assert profile_to_dict(load_profile(copy)) == profile_to_dict(loaded.profile)
    assert loaded.profile.motion_settings().speed_um_s == loaded.profile.rail.speed_mm_s * 1000
    assert loaded.profile.stack_settings().method == loaded.profile.stacking.method


def test_choices_match_the_stacking_package() -> None:
    from rig.devices.rails.registry import PROTOCOLS
    from stacking.accumulate import METHODS
    from stacking.align import MODELS
    from stacking.focus import MEASURES

    assert profile_schema.STACK_METHODS == METHODS
    assert profile_schema.ALIGN_MODELS == MODELS
    assert profile_schema.FOCUS_MEASURES == MEASURES
    assert (*PROTOCOLS, "lens") == profile_schema.RAIL_PROTOCOLS


def test_schema_version_is_written_first(tmp_path: Path) -> None:
    save_profile(Profile(name="x"), tmp_path / "x.toml")
    assert (tmp_path / "x.toml").read_text().startswith("schema_version = 2\n")


# -- validation: one test per kind of problem ----------------------------------------------


def test_below_minimum_names_file_key_value_and_bound() -> None:
    msg = problems_of(with_keys("rail", backlash_um=-5))
    assert msg == "grbl-rail.toml: rail.backlash_um = -5: must be >= 0"


def test_not_positive() -> None:
    msg = problems_of(with_keys("rail", speed_mm_s=0))
    assert "grbl-rail.toml: rail.speed_mm_s = 0: must be > 0" in msg


def test_bool_is_not_a_number_but_int_is_a_float() -> None:
    assert "rail.settle_s = true: must be a number" in problems_of(with_keys("rail", settle_s=True))
    assert loads_profile(with_keys("rail", settle_s=2)).profile.rail.settle_s == 2.0


def test_whole_number_required() -> None:
    msg = problems_of(with_keys("plan", shots_per_position=1.5))
    assert "plan.shots_per_position = 1.5: must be a whole number" in msg


def test_string_required() -> None:
    assert "rail.port = 5: must be a string in quotes" in problems_of(with_keys("rail", port=5))


def test_boolean_required() -> None:
    msg = problems_of(with_keys("rail", return_to_start="yes"))
    assert 'rail.return_to_start = "yes": must be true or false' in msg


def test_choice_lists_what_is_allowed() -> None:
    msg = problems_of(with_keys("rail", protocol="klipper"))
    assert 'rail.protocol = "klipper": must be one of grbl, marlin, sangaboard, tic, lens' in msg
    msg = problems_of(with_keys("stacking", method="median"))
    assert 'stacking.method = "median": must be one of pyramid, weighted, depthmap' in msg


def test_unknown_key_suggests_the_closest() -> None:
    msg = problems_of(with_keys("rail", backlash=5))
    assert msg == "grbl-rail.toml: rail.backlash = 5: unknown key; did you mean backlash_um?"


def test_unknown_section_suggests_the_closest() -> None:
    assert "rial = {...}: unknown key; did you mean rail?" in problems_of(GOOD + "\n[rial]\nx=1\n")


def test_unknown_key_without_a_close_match_lists_valid_keys() -> None:
    msg = problems_of(with_keys("plan", zzz=1))
    assert "plan.zzz = 1: unknown key; valid keys: mode, step_um, count" in msg


def test_section_must_be_a_table() -> None:
    text = GOOD.replace("[rail]", "[rail_x]")
    assert "rail_x = {...}: unknown key; did you mean rail?" in problems_of(text)
    msg = problems_of('schema_version = 2\nname = "x"\nrail = 3\n')
    assert "rail = 3: must be a table: write it as a [rail] section" in msg


def test_camera_settings_are_strings() -> None:
    msg = problems_of(with_keys("camera", settings={"iso": 100}))
    assert 'camera.settings.iso = 100: must be a string in quotes, e.g. "100"' in msg


def test_delete_after_download_is_automatic_unless_given(tmp_path: Path) -> None:
    base = loads_profile(GOOD).profile
    assert base.camera.delete_after_download is None  # left out: by capture target
    assert "delete_after_download" not in profile_to_dict(base)["camera"]
    for forced in (True, False):
        profile = loads_profile(with_keys("camera", delete_after_download=forced)).profile
        assert profile.camera.delete_after_download is forced
        save_profile(profile, tmp_path / "forced.toml")
        assert load_profile(tmp_path / "forced.toml").camera.delete_after_download is forced
    msg = problems_of(with_keys("camera", delete_after_download="auto"))
    assert 'camera.delete_after_download = "auto": must be true or false' in msg


def test_soft_limits_must_be_ordered() -> None:
    msg = problems_of(with_keys("rail", soft_min_um=500.0, soft_max_um=100.0))
    assert "rail.soft_min_um = 500.0: must be below rail.soft_max_um (100)" in msg


def test_f_number_xor_numerical_aperture(tmp_path: Path) -> None:
    msg = problems_of(with_keys("optics", numerical_aperture=0.4))
    assert "optics.numerical_aperture = 0.4: give either optics.f_number" in msg
    only_na = GOOD.replace("f_number = 5.6", "numerical_aperture = 0.25")
    optics = loads_profile(only_na).profile.optics
    assert optics.f_number is None and optics.numerical_aperture == 0.25
    neither = Profile(name="x")
    neither.optics.f_number = None
    with pytest.raises(ProfileError, match=r"x\.toml: optics: give optics\.f_number"):
        save_profile(neither, tmp_path / "x.toml")


def test_step_counting_controllers_need_steps_per_mm() -> None:
    text = GOOD.replace('protocol = "grbl"', 'protocol = "tic"').replace(
        "steps_per_mm = 3200.0", ""
    )
    msg = problems_of(text)
    assert "grbl-rail.toml: rail.steps_per_mm: missing; a tic controller counts steps" in msg


def test_lens_needs_um_per_step() -> None:
    msg = problems_of(GOOD.replace('protocol = "grbl"', 'protocol = "lens"'))
    assert "rail.um_per_step: missing; lens focus needs" in msg


def test_start_count_needs_count() -> None:
    msg = problems_of(GOOD.replace('mode = "start_end"', 'mode = "start_count"'))
    assert 'plan.count: missing; mode = "start_count" needs' in msg


def test_outputs_as_list_or_table() -> None:
    table = with_keys("stacking", outputs={"tiff": False, "depth_map": True})
    assert loads_profile(table).profile.stacking.outputs == ["depth_map"]
    msg = problems_of(with_keys("stacking", outputs=["png"]))
    assert "stacking.outputs = ['png']: must be a list of tiff, jpeg, depth_map" in msg
    assert "must name at least one output" in problems_of(with_keys("stacking", outputs=[]))


@pytest.mark.parametrize(
    ("key", "template", "expected"),
    [
        ("file_template", "frame_{shot}", "unknown field {shot}; use {profile}, {date}"),
        ("file_template", "a/{n:04d}", "must not contain / or \\: put folders in folder_template"),
        ("folder_template", "{n}", "unknown field {n}; use {profile}, {date}, {time}"),
        ("folder_template", "../{date}", "must be a relative path without .."),
        ("file_template", "frame_{n:q}", "cannot be filled in"),
        ("file_template", "frame_{n", "not a valid template"),
    ],
)
def test_templates_are_checked(key: str, template: str, expected: str) -> None:
    msg = problems_of(with_keys("output", **{key: template}))
    assert f"output.{key} = {template!r}".replace("'", '"') in msg
    assert expected in msg


def test_name_is_required() -> None:
    msg = problems_of("schema_version = 2\n")
    assert 'grbl-rail.toml: name: missing; add name = "..."' in msg


def test_every_problem_is_reported_at_once() -> None:
    text = with_keys("rail", backlash_um=-1, approach="up", backlash=3, settle_s="1")
    lines = problems_of(text).splitlines()
    assert len(lines) == 4
    assert all(line.startswith("grbl-rail.toml: rail.") for line in lines)


def test_not_toml() -> None:
    assert "grbl-rail.toml: not valid TOML" in problems_of("name = = 1")


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"name = '\xff'")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(bad)


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("MP-E 65 at 3x", "mp-e-65-at-3x"),
        ("../../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ("Café Zürich", "cafe-zurich"),
        ("under_score", "under_score"),
    ],
)
def test_names_become_safe_file_names(name: str, stem: str) -> None:
    assert safe_name(name) == stem


@pytest.mark.parametrize("name", ["", "..", "/", "日本", "  "])
def test_names_without_usable_characters_are_refused(name: str) -> None:
    with pytest.raises(ProfileError, match="no usable characters"):
        safe_name(name)


# -- migration -------------------------------------------------------------------------------

V1 = """schema_version = 1
name = "old rail"
[rail]
protocol = "grbl"
backlash = 0.1
speed = 3
settle_ms = 250
"""


def test_v1_is_migrated_with_notes() -> None:
    loaded = loads_profile(V1, "old.toml")
    rail = loaded.profile.rail
    assert (rail.backlash_um, rail.speed_mm_s, rail.settle_s) == (100.0, 3.0, 0.25)
    assert loaded.migrated == [
        "old.toml: schema 1 -> 2: rail.backlash = 0.1 became rail.backlash_um = 100.0 (mm -> um)",
        "old.toml: schema 1 -> 2: rail.speed = 3 became rail.speed_mm_s = 3 (renamed)",
        "old.toml: schema 1 -> 2: rail.settle_ms = 250 became rail.settle_s = 0.25 (ms -> s)",
    ]


def test_migrated_bad_values_are_reported_under_the_new_key() -> None:
    msg = problems_of(V1.replace("backlash = 0.1", 'backlash = "lots"'))
    assert 'rail.backlash_um = "lots": must be a number' in msg


def test_newer_schema_is_refused() -> None:
    msg = problems_of('schema_version = 3\nname = "x"\n')
    assert "written by a newer stackrig" in msg and "upgrade stackrig" in msg


@pytest.mark.parametrize("version", ["", "schema_version = 0\n", 'schema_version = "2"\n'])
def test_missing_or_bad_schema_version(version: str) -> None:
    assert "schema_version" in problems_of(version + 'name = "x"\n')


# -- save ------------------------------------------------------------------------------------


def test_atomic_save_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "rig.toml"
    save_profile(Profile(name="first"), path)
    save_profile(Profile(name="second"), path)
    assert load_profile(path).name == "second"
    assert load_profile(tmp_path / "rig.toml.bak").name == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.toml", "rig.toml.bak"]


def test_invalid_profile_is_never_written(tmp_path: Path) -> None:
    bad = Profile(name="x")
    bad.rail.backlash_um = -1
    with pytest.raises(ProfileError, match="backlash_um"):
        save_profile(bad, tmp_path / "x.toml")
    assert list(tmp_path.iterdir()) == []


def test_session_copy(tmp_path: Path) -> None:
    profile = load_profile(SHIPPED[0])
    written = write_session_copy(profile, tmp_path)
    assert written == tmp_path / "profile.toml" and load_profile(written) == profile


# -- overrides -------------------------------------------------------------------------------


def test_overrides_are_applied_and_validated() -> None:
    base = load_profile(shipped_dir() / "simulated.toml")
    changed = with_overrides(base, {"rail.speed_mm_s": 2, "stacking.window_px": 5})
    assert changed.rail.speed_mm_s == 2.0 and changed.stack_settings().window == 5.0
    assert base.rail.speed_mm_s == 20.0
    with pytest.raises(
        ProfileError, match=r"overrides: rail\.speed = 2: unknown key; did you mean"
    ):
        with_overrides(base, {"rail.speed": 2})
    with pytest.raises(ProfileError, match=r"rail.backlash_um = -1: must be >= 0"):
        with_overrides(base, {"rail.backlash_um": -1})


# -- the loader never crashes ---------------------------------------------------------------


def _real_keys() -> list[str]:
    keys = list(profile_schema.TOP_KEYS)
    for cls in profile_schema.SECTIONS.values():
        keys += [f.name for f in dataclasses.fields(cls)]
    return [*keys, "settings", "backlash", "speed", "settle_ms", "tiff", "jpeg", "depth_map"]


TOML_CHARS = list("[]=.\"'#\n ,{}abc_-0123456789e+")
TOML_TEXT = st.lists(st.sampled_from([*TOML_CHARS, "name", "rail", "schema_version"])).map("".join)
KEYS = st.sampled_from(_real_keys()) | st.text(max_size=8)
SCALARS = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-3, max_value=3)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=12)
    | st.sampled_from(profile_schema.RAIL_PROTOCOLS + profile_schema.PLAN_MODES + ("{n:04d}",))
    | st.datetimes(timezones=st.none() | st.just(datetime.UTC))
    | st.dates()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
SECTION_NAMES = st.sampled_from(list(profile_schema.SECTIONS))
RANDOM_DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.just(2) | st.just(1) | st.integers(-1, 4) | SCALARS,
        "name": st.just("rig") | st.text(max_size=10) | SCALARS,
    },
).flatmap(
    lambda top: st.dictionaries(
        SECTION_NAMES | KEYS,
        st.dictionaries(KEYS, VALUES, max_size=6) | VALUES,
        max_size=5,
    ).map(lambda rest: {**top, **rest})
)
# A shipped profile with a few keys changed reaches the checks past the schema version.
REAL_PAIRS = [
    (name, f.name) for name, cls in profile_schema.SECTIONS.items() for f in dataclasses.fields(cls)
]
EDIT = st.tuples(SECTION_NAMES | KEYS, KEYS, VALUES) | st.sampled_from(REAL_PAIRS).flatmap(
    lambda pair: st.tuples(st.just(pair[0]), st.just(pair[1]), SCALARS)
)
EDITS = st.lists(EDIT, max_size=4)


def _edited(base: dict[str, Any], edits: list[tuple[str, str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    for section, key, value in edits:
        table = doc.setdefault(section, {})
        if isinstance(table, dict):
            table[key] = value
        else:
            doc[section] = value
    return doc


SHIPPED_DICTS = [profile_to_dict(load_profile(p)) for p in SHIPPED]
DOCUMENTS = RANDOM_DOCUMENTS | st.builds(_edited, st.sampled_from(SHIPPED_DICTS), EDITS)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_toml_document_loads_or_raises_profile_error(doc: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not representable in TOML (e.g. a list holding a table with a bad key)
    _load_or_profile_error(text)


@settings(max_examples=2000, deadline=None)
@given(st.text() | TOML_TEXT)
def test_any_text_loads_or_raises_profile_error(text: str) -> None:
    _load_or_profile_error(text)


def _load_or_profile_error(text: str) -> None:
    try:
        loaded = loads_profile(text, "fuzz.toml")
    except ProfileError as exc:
        assert str(exc).startswith("fuzz.toml: ")
        return
    assert loads_profile(tomli_w.dumps(profile_to_dict(loaded.profile))).profile == loaded.profile


def test_a_profile_that_cannot_be_written_is_a_profile_error_naming_the_path(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    target = blocker / "rig.toml"
    with pytest.raises(ProfileError, match="cannot be written") as caught:
        save_profile(loads_profile(GOOD).profile, target)
    assert str(target) in str(caught.value)
