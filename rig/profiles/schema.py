"""What a rig profile holds: section dataclasses with defaults, and validation of parsed TOML.

Validation collects every problem before failing, so one run of ``stackrig profile validate``
lists them all. Each line names the file, the key path, the bad value and what is allowed.

Output templates (``[output]``) are Python format strings with these fields:

* ``{profile}``: the profile's file name (``grbl-macro``), ``{date}``: ``2026-11-22``,
  ``{time}``: ``142501`` (HHMMSS), in ``folder_template`` and ``file_template``;
* ``{n}``: the shot number from 1, ``{position_um}``: the rail position, in ``file_template``
  only. Format specs work as in Python: ``{n:04d}``, ``{position_um:.0f}``.

``file_template`` has no extension (the camera's file type adds it) and no path separators.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rig.errors import ProfileError
from stacking.settings import MAX_SHARPEN, MAX_WINDOW, MIN_WINDOW
from stacking.settings import MEASURES as FOCUS_MEASURES
from stacking.settings import METHODS as STACK_METHODS
from stacking.settings import MODELS as ALIGN_MODELS

if TYPE_CHECKING:
    from rig.devices.motion import MotionSettings
    from stacking.settings import StackSettings

SCHEMA_VERSION = 2
RAIL_PROTOCOLS = ("grbl", "marlin", "sangaboard", "tic", "lens")
NEEDS_STEPS = ("sangaboard", "tic")  # their firmware counts steps, so stackrig converts
SIDES = ("positive", "negative")
AXES = ("x", "y", "z")  # the controller axis that drives focus (GRBL, Marlin, Sangaboard)
HOME_DIRECTIONS = ("reverse", "forward")  # which limit switch homing seeks
PLAN_MODES = ("start_end", "start_count")
FAULT_POLICIES = ("retry", "skip", "stop")
OUTPUTS = ("tiff", "jpeg", "depth_map")
MAX_SPEED_MM_S = 200.0  # beyond any focus rail; a typo like 5000 must not reach the motor
MAX_BACKLASH_UM = 5000.0
FOLDER_FIELDS = ("profile", "date", "time")
FILE_FIELDS = (*FOLDER_FIELDS, "n", "position_um")
_SAMPLE = {"profile": "p", "date": "2026-01-01", "time": "120000", "n": 1, "position_um": 0.0}


@dataclass(frozen=True)
class Check:
    """How one key is validated. ``kind``: float, int, str, bool, strtable or outputs."""

    kind: str
    optional: bool = False  # None allowed (the key is left out of the file)
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    nonempty: bool = False


def spec(default: Any, kind: str = "float", **check: Any) -> Any:
    """A dataclass field carrying its :class:`Check`."""
    return field(default=default, metadata=_meta(kind, **check))


def _meta(kind: str, **check: Any) -> dict[str, Check]:
    return {"check": Check(kind, **check)}


@dataclass
class CameraSection:
    model: str = spec("", "str")  # text the detected camera model must contain ("" = any)
    port: str | None = spec(None, "str", optional=True, nonempty=True)  # e.g. usb:001,004
    # gphoto2 setting -> value, e.g. iso = "100"; choices are checked against the camera later
    settings: dict[str, str] = field(default_factory=dict, metadata=_meta("strtable"))
    # Delete the camera's copy once a shot is safely on disk. Left out: automatic, yes when
    # capturetarget is the camera's RAM ("Internal RAM", "sdram"), no on a memory card
    # (nor where the camera reports no target); true or false force it.
    delete_after_download: bool | None = spec(None, "bool", optional=True)


@dataclass
class RailSection:
    """The focus drive. Each key reaches the driver that uses it (rig.devices.rails.registry);
    see docs/rails.md for which firmware takes which."""

    protocol: str = spec("grbl", "str", choices=RAIL_PROTOCOLS)
    port: str = spec("/dev/stackrig-rail", "str", nonempty=True)  # unused for lens
    baud_rate: int | None = spec(None, "int", optional=True, ge=1200, le=2_000_000)  # None: usual
    axis: str = spec("z", "str", choices=AXES)  # GRBL, Marlin, Sangaboard
    steps_per_mm: float | None = spec(None, optional=True, gt=0, le=1e6)
    speed_mm_s: float = spec(2.0, gt=0, le=MAX_SPEED_MM_S)
    accel_mm_s2: float | None = spec(None, optional=True, gt=0, le=1e5)  # Marlin (M201), Tic
    home_direction: str = spec("reverse", "str", choices=HOME_DIRECTIONS)  # Tic, Sangaboard
    tic_device_number: int | None = spec(None, "int", optional=True, ge=0, le=127)  # None: compact
    tic_crc: bool = spec(False, "bool")  # the Tic's "Enable CRC" setting
    backlash_um: float = spec(0.0, ge=0, le=MAX_BACKLASH_UM)
    approach: str = spec("positive", "str", choices=SIDES)
    soft_min_um: float | None = spec(None, optional=True)
    soft_max_um: float | None = spec(None, optional=True)
    settle_s: float = spec(0.5, ge=0, le=600)
    return_to_start: bool = spec(True, "bool")
    um_per_step: float | None = spec(None, optional=True, gt=0)  # lens only
    step_size: int = spec(1, "int", ge=1)  # lens only


@dataclass
class OpticsSection:
    magnification: float = spec(1.0, gt=0)
    f_number: float | None = spec(8.0, optional=True, gt=0)  # or numerical_aperture, not both
    numerical_aperture: float | None = spec(None, optional=True, gt=0)
    coc_um: float = spec(15.0, gt=0)  # circle of confusion on the sensor
    wavelength_nm: float = spec(550.0, gt=0)


@dataclass
class PlanSection:
    mode: str = spec("start_end", "str", choices=PLAN_MODES)
    step_um: float | None = spec(None, optional=True, gt=0)  # None: from the optics
    count: int | None = spec(None, "int", optional=True, ge=2)
    direction: str = spec("positive", "str", choices=SIDES)
    shots_per_position: int = spec(1, "int", ge=1, le=100)
    # headless answer to a failed shot: retry once then stop (resumable), retry then skip it,
    # or stop at once; the TUI asks the operator instead
    on_fault: str = spec("retry", "str", choices=FAULT_POLICIES)


@dataclass
class StackingSection:
    method: str = spec("pyramid", "str", choices=STACK_METHODS)
    align: str = spec("similarity", "str", choices=ALIGN_MODELS)
    focus_measure: str = spec("laplacian", "str", choices=FOCUS_MEASURES)
    window_px: float | None = spec(None, optional=True, ge=MIN_WINDOW, le=MAX_WINDOW)  # None: auto
    sharpen: float = spec(0.0, ge=0, le=MAX_SHARPEN)  # unsharp-mask amount of the result
    luminance_only: bool = spec(False, "bool")  # fuse brightness, colour from the sharpest frame
    crop: bool = spec(True, "bool")  # crop to the area every frame sees (see StackSettings)
    # zlib inside the TIFF: ~60 % smaller 8-bit stacks, ~0.4 s longer to write at 24 MP
    compress_tiff: bool = spec(False, "bool")
    outputs: list[str] = field(default_factory=lambda: ["tiff"], metadata=_meta("outputs"))


@dataclass
class OutputSection:
    captures_root: str | None = spec(None, "str", optional=True, nonempty=True)
    folder_template: str = spec("{date}_{time}_{profile}", "str", nonempty=True)
    file_template: str = spec("frame_{n:04d}", "str", nonempty=True)
    preview_every: int = spec(5, "int", ge=0, le=1000)  # stack-so-far snapshot; 0: none


SECTIONS: dict[str, type] = {
    "camera": CameraSection,
    "rail": RailSection,
    "optics": OpticsSection,
    "plan": PlanSection,
    "stacking": StackingSection,
    "output": OutputSection,
}
TOP_KEYS = ("schema_version", "name", "description", "notes", *SECTIONS)


@dataclass
class Profile:
    name: str
    description: str = ""
    notes: str = ""
    camera: CameraSection = field(default_factory=CameraSection)
    rail: RailSection = field(default_factory=RailSection)
    optics: OpticsSection = field(default_factory=OpticsSection)
    plan: PlanSection = field(default_factory=PlanSection)
    stacking: StackingSection = field(default_factory=StackingSection)
    output: OutputSection = field(default_factory=OutputSection)

    def motion_settings(self) -> MotionSettings:
        from rig.devices.motion import MotionSettings

        r = self.rail
        return MotionSettings(
            backlash_um=r.backlash_um,
            approach=r.approach,
            soft_min_um=r.soft_min_um,
            soft_max_um=r.soft_max_um,
            settle_s=r.settle_s,
            speed_um_s=r.speed_mm_s * 1000.0,
        )

    def stack_settings(self) -> StackSettings:
        from stacking.settings import StackSettings

        s = self.stacking
        same = ("method", "align", "focus_measure", "sharpen", "luminance_only", "crop")
        return StackSettings(window=s.window_px, **{key: getattr(s, key) for key in same})


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """TOML-ready: ``schema_version`` first, unset (None) keys left out."""
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    out |= {"name": profile.name, "description": profile.description, "notes": profile.notes}
    for section in SECTIONS:
        values = dataclasses.asdict(getattr(profile, section))
        out[section] = {k: v for k, v in values.items() if v is not None}
    return out


class Problems:
    """Collects ``file: key = value: what is allowed`` lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, path: str, value: Any, message: str) -> None:
        self.lines.append(f"{self.source}: {path} = {show(value)}: {message}")

    def note(self, message: str) -> None:
        self.lines.append(f"{self.source}: {message}")

    def unknown(self, path: str, value: Any, valid: tuple[str, ...] | list[str]) -> None:
        key = path.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"valid keys: {', '.join(valid)}"
        self.add(path, value, f"unknown key; {hint}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ProfileError("\n".join(self.lines))


def show(value: Any) -> str:
    """A value as it reads in TOML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        text = "{...}"
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_profile(data: dict[str, Any], problems: Problems) -> Profile:
    """A Profile from parsed TOML (at the current schema); raises with every problem found."""
    for key, value in data.items():
        if key not in TOP_KEYS:
            problems.unknown(key, value, TOP_KEYS)
    if "name" not in data:
        problems.note('name: missing; add name = "..." near the top')
    profile = Profile(
        name=_text("name", data.get("name", ""), problems, "name" in data),
        description=_text("description", data.get("description", ""), problems),
        notes=_text("notes", data.get("notes", ""), problems),
    )
    for name, cls in SECTIONS.items():
        setattr(profile, name, _section(name, cls, data.get(name), problems))
    _cross_checks(profile, problems)
    problems.raise_if_any()
    return profile


def _text(key: str, value: Any, problems: Problems, key_given: bool = True) -> str:
    if not isinstance(value, str):
        problems.add(key, value, "must be a string in quotes")
        return ""
    if key == "name" and key_given and not value.strip():
        problems.add(key, value, "must not be empty: give the profile a name")
    return value


def _section(name: str, cls: type, raw: Any, problems: Problems) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        problems.add(name, raw, f"must be a table: write it as a [{name}] section")
        return cls()
    fields = {f.name: f.metadata["check"] for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{name}.{key}"
        if key not in fields:
            problems.unknown(path, value, tuple(fields))
            continue
        before = len(problems.lines)
        checked = check_value(fields[key], path, value, problems)
        if len(problems.lines) == before:
            values[key] = checked
    if name == "optics" and "numerical_aperture" in values and "f_number" not in raw:
        values["f_number"] = (
            None  # an objective is rated by NA: the default f-number does not apply
        )
    return cls(**values)


def check_value(check: Check, path: str, value: Any, problems: Problems) -> Any:
    """``value`` converted to the key's type; reports to ``problems`` when it is not allowed."""
    kind = check.kind
    if kind in ("float", "int"):
        return _number(check, path, value, problems)
    if kind == "bool":
        if not isinstance(value, bool):
            problems.add(path, value, "must be true or false")
        return value
    if kind == "strtable":
        return _string_table(path, value, problems)
    if kind == "outputs":
        return _outputs(path, value, problems)
    if not isinstance(value, str):
        problems.add(path, value, "must be a string in quotes")
    elif check.choices and value not in check.choices:
        problems.add(path, value, f"must be one of {', '.join(check.choices)}")
    elif check.nonempty and not value.strip():
        problems.add(path, value, "must not be empty: leave the key out for the default")
    return value


def _number(check: Check, path: str, value: Any, problems: Problems) -> Any:
    whole = check.kind == "int"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (whole and isinstance(value, float))
    ):
        problems.add(path, value, "must be a whole number" if whole else "must be a number")
        return value
    try:
        number = value if whole else float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        problems.add(path, value, "must be a finite number")
    elif check.ge is not None and number < check.ge:
        problems.add(path, value, f"must be >= {check.ge:g}")
    elif check.gt is not None and number <= check.gt:
        problems.add(path, value, f"must be > {check.gt:g}")
    elif check.le is not None and number > check.le:
        problems.add(path, value, f"must be <= {check.le:g}")
    return number


def _string_table(path: str, value: Any, problems: Problems) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.add(path, value, 'must be a table of setting = "value", e.g. iso = "100"')
        return {}
    for key, item in value.items():
        if not isinstance(item, str):
            problems.add(f"{path}.{key}", item, 'must be a string in quotes, e.g. "100"')
    return dict(value)


def _outputs(path: str, value: Any, problems: Problems) -> list[str]:
    allowed = f"a list of {', '.join(OUTPUTS)} or a table of booleans"
    if isinstance(value, dict):
        names = []
        for key, on in value.items():
            if key not in OUTPUTS:
                problems.unknown(f"{path}.{key}", on, OUTPUTS)
            elif not isinstance(on, bool):
                problems.add(f"{path}.{key}", on, "must be true or false")
            elif on:
                names.append(key)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = list(value)
        if any(v not in OUTPUTS for v in names):
            problems.add(path, value, f"must be {allowed}")
    else:
        problems.add(path, value, f"must be {allowed}")
        return []
    if not names:
        problems.add(path, value, f"must name at least one output: {', '.join(OUTPUTS)}")
    return [o for o in OUTPUTS if o in names]


def check_profile(profile: Profile, source: str) -> None:
    """The checks across keys, on a profile built in code (files get them in parse_profile)."""
    problems = Problems(source)
    _cross_checks(profile, problems)
    problems.raise_if_any()


def _cross_checks(p: Profile, problems: Problems) -> None:
    r, o = p.rail, p.optics
    if r.soft_min_um is not None and r.soft_max_um is not None and r.soft_min_um >= r.soft_max_um:
        problems.add(
            "rail.soft_min_um", r.soft_min_um, f"must be below rail.soft_max_um ({r.soft_max_um:g})"
        )
    if r.protocol in NEEDS_STEPS and r.steps_per_mm is None:
        problems.note(
            f"rail.steps_per_mm: missing; a {r.protocol} controller counts steps, so give "
            "steps per mm (see docs/rails.md)"
        )
    if r.protocol == "sangaboard" and r.home_direction == "forward":
        problems.add(
            "rail.home_direction",
            r.home_direction,
            "a Sangaboard homes to its min switches only (its home_max leaves the count as it "
            'was): use "reverse", or set zero by hand',
        )
    if r.protocol == "lens" and r.um_per_step is None:
        problems.note(
            "rail.um_per_step: missing; lens focus needs the focus shift of one step, "
            "calibrate it per lens and magnification"
        )
    if o.f_number is not None and o.numerical_aperture is not None:
        problems.add(
            "optics.numerical_aperture",
            o.numerical_aperture,
            "give either optics.f_number (lenses) or optics.numerical_aperture (objectives), "
            "not both",
        )
    elif o.f_number is None and o.numerical_aperture is None:
        problems.note("optics: give optics.f_number (lenses) or optics.numerical_aperture")
    if p.plan.mode == "start_count" and p.plan.count is None:
        problems.note('plan.count: missing; mode = "start_count" needs the number of shots')
    _check_template(p.output.folder_template, "output.folder_template", FOLDER_FIELDS, problems)
    _check_template(p.output.file_template, "output.file_template", FILE_FIELDS, problems)


def _check_template(template: str, path: str, allowed: tuple[str, ...], problems: Problems) -> None:
    fields_ok = ", ".join("{" + f + "}" for f in allowed)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        problems.add(path, template, f"not a valid template ({exc}); use fields {fields_ok}")
        return
    unknown = [n for n in names if n not in allowed]
    if unknown:
        problems.add(path, template, f"unknown field {{{unknown[0]}}}; use {fields_ok}")
    elif path.endswith("file_template") and ("/" in template or "\\" in template):
        problems.add(path, template, "must not contain / or \\: put folders in folder_template")
    elif ".." in template.replace("\\", "/").split("/") or template.startswith(("/", "\\")):
        problems.add(path, template, "must be a relative path without ..")
    else:
        try:
            template.format(**_SAMPLE)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            problems.add(path, template, f"cannot be filled in ({exc}); e.g. {{n:04d}}")
