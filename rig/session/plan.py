"""A shooting plan: the focus positions in shooting order, and what a run will cost.

Positions are in micrometres, in the rail's coordinates. Three ways to make one:

* start/end + step (:meth:`Plan.from_start_end_step`): the step is kept exactly as given and
  the **last position is the end exactly**; when the range is not a whole number of steps the
  last step is the shorter one. No position lies beyond the end, and the subject's far side is
  always shot. start > end shoots downwards.
* start/end + count (:meth:`Plan.from_start_end_count`): evenly spaced, both ends included.
* start + count (:meth:`Plan.from_start_count`, one-point mode): from the current position,
  ``count`` positions one step apart in the profile's ``plan.direction``.

:meth:`Plan.from_profile` picks one from the profile's ``[plan]`` and the command line, and
:func:`estimate` gives the duration, the disk space and what looks wrong before a run starts.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.devices.image_format import FORMAT_KEYS, format_kinds
from rig.errors import RigError
from rig.profiles.schema import SIDES, Profile
from rig.session.optics import DepthOfField, depth_of_field

MAX_POSITIONS = 10_000  # more is a typo (a step in mm given as um), not a stack
SNAP_UM = 0.01  # a grid point this close to the end is the end (below any rail's resolution)
DEFAULT_TRAVEL_UM = 100_000.0  # rig.devices.motion refuses longer moves without soft limits

# Estimate assumptions (camera-and-operators.md "Timing expectations": a capture takes about
# 1 s, a download 1-2 s), so 2 s per shot for the exposure, the camera's processing and the
# download; acceleration is ignored (moves between shots are short).
SHOT_S = 2.0
MB = 1_000_000
# Bytes per frame by file type at 24 MP, when the profile says only the camera's image format.
FRAME_BYTES = {"jpeg": 8 * MB, "raw": 30 * MB, "tiff": 24 * MB * 3}  # TIFF: 8-bit RGB
# Stack outputs at 24 MP: 16-bit RGB TIFF, JPEG, 16-bit depth map (+ its colour PNG).
OUTPUT_BYTES = {"tiff": 24 * MB * 6, "jpeg": 8 * MB, "depth_map": 24 * MB * 2 + 10 * MB}


class PlanError(RigError, ValueError):
    """A plan that cannot be shot; the message says which value to change."""


@dataclass(frozen=True)
class Plan:
    """Where to shoot, in order, and how to get there."""

    positions_um: tuple[float, ...]
    shots_per_position: int = 1
    approach: str = "positive"  # the side every move finishes from (backlash)
    settle_s: float = 0.0
    return_to_start: bool = True
    relative: bool = False  # positions from wherever the rail is (not known): no limit checks

    def __post_init__(self) -> None:
        if not self.positions_um:
            raise PlanError("a plan needs at least one position")
        if not all(math.isfinite(p) for p in self.positions_um):
            raise PlanError("a plan position is not a number: give micrometres")
        if len(self.positions_um) > MAX_POSITIONS:
            raise PlanError(
                f"{len(self.positions_um)} positions: more than {MAX_POSITIONS}; give a larger "
                "step or a shorter range (steps are in micrometres)"
            )
        if self.shots_per_position < 1:
            raise PlanError(f"shots per position = {self.shots_per_position}: give 1 or more")
        if self.approach not in SIDES:
            raise PlanError(f"approach = {self.approach!r}: must be one of {', '.join(SIDES)}")
        if not math.isfinite(self.settle_s) or self.settle_s < 0:
            raise PlanError(f"settle = {self.settle_s:g} s: give 0 or more seconds")

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def from_start_end_step(
        cls, start_um: float, end_um: float, step_um: float, **how: Any
    ) -> Plan:
        """From ``start_um`` towards ``end_um`` every ``step_um``, ending at ``end_um`` exactly."""
        _check_range(start_um, end_um)
        _check_step(step_um)
        span = abs(end_um - start_um)
        whole = math.floor(span / step_um + 1e-9)  # 1e-9: 1000/100 is 10 steps, not 9.999
        if whole + 1 > MAX_POSITIONS:
            raise PlanError(
                f"step {step_um:g} um over {span:g} um is {whole + 1} positions: more than "
                f"{MAX_POSITIONS}; give a larger step (steps are in micrometres)"
            )
        sign = 1.0 if end_um > start_um else -1.0
        positions = [start_um + sign * i * step_um for i in range(whole + 1)]
        if abs(positions[-1] - end_um) <= SNAP_UM:
            positions[-1] = end_um
        else:
            positions.append(end_um)  # the shorter last step: the far side is always shot
        return cls(_rounded(positions), **how)

    @classmethod
    def from_start_end_count(cls, start_um: float, end_um: float, count: int, **how: Any) -> Plan:
        """``count`` positions evenly spaced from ``start_um`` to ``end_um``, both included."""
        _check_range(start_um, end_um)
        _check_count(count)
        step = (end_um - start_um) / (count - 1)
        positions = [start_um + i * step for i in range(count - 1)] + [end_um]
        return cls(_rounded(positions), **how)

    @classmethod
    def from_start_count(
        cls, start_um: float, count: int, step_um: float, direction: str = "positive", **how: Any
    ) -> Plan:
        """One-point mode: ``count`` positions from ``start_um``, ``step_um`` apart."""
        _check_step(step_um)
        _check_count(count)
        if direction not in SIDES:
            raise PlanError(f"plan.direction = {direction!r}: must be one of {', '.join(SIDES)}")
        sign = 1.0 if direction == "positive" else -1.0
        positions = [start_um + sign * i * step_um for i in range(count)]
        return cls(_rounded(positions), **how)

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        start_um: float | None = None,
        end_um: float | None = None,
        step_um: float | None = None,
        count: int | None = None,
        here_um: float | None = None,
    ) -> Plan:
        """The plan the profile's ``[plan]`` describes, with what the command line gave.

        start and end given: start/end + count with a count (``count``, else ``plan.count`` in
        ``mode = "start_end"`` when no step is set), else start/end + step. A count without an
        end, or nothing in ``mode = "start_count"``: one-point mode from ``start_um``, else
        from the current position ``here_um``. The step: ``step_um``, else ``plan.step_um``,
        else the optics' suggested step. ``here_um`` None in one-point mode: the rail's
        position is not known, so the positions are relative to 0 and not checked against
        the soft limits.
        """
        p, r = profile.plan, profile.rail
        how = {
            "shots_per_position": p.shots_per_position,
            "approach": r.approach,
            "settle_s": r.settle_s,
            "return_to_start": r.return_to_start,
        }
        if end_um is not None and start_um is None:
            raise PlanError("--end needs --start too (or --count alone for one-point mode)")
        if start_um is not None and end_um is not None:
            if count is not None and step_um is not None:
                raise PlanError("give --step or --count with --start and --end, not both")
            by_count = step_um is None and p.step_um is None and p.mode == "start_end"
            n = count if count is not None else (p.count if by_count else None)
            if n is not None:
                plan = cls.from_start_end_count(start_um, end_um, n, **how)
            else:
                plan = cls.from_start_end_step(start_um, end_um, step_for(profile, step_um), **how)
        else:
            if count is None and start_um is not None:
                raise PlanError("--start needs --end, or --count to shoot that many from it")
            if count is None and p.mode == "start_end":
                raise PlanError(
                    "no positions: give --start and --end (the subject's near and far focus), "
                    "or --count N to shoot from one point"
                )
            n = count if count is not None else p.count
            if n is None:
                raise PlanError('plan.count: missing; mode = "start_count" needs it (or --count)')
            relative = start_um is None and here_um is None
            first = start_um if start_um is not None else (here_um or 0.0)
            step = step_for(profile, step_um)
            plan = cls.from_start_count(first, n, step, p.direction, relative=relative, **how)
            if relative:
                return plan
        problems = outside_limits(plan.positions_um, profile)
        if problems:
            raise PlanError(problems[0])
        return plan

    # -- what it is ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.positions_um)

    @property
    def frames(self) -> int:
        return self.count * self.shots_per_position

    @property
    def first_um(self) -> float:
        return self.positions_um[0]

    @property
    def last_um(self) -> float:
        return self.positions_um[-1]

    @property
    def travel_um(self) -> float:
        return abs(self.last_um - self.first_um)

    @property
    def step_um(self) -> float:
        """The largest distance between neighbouring positions (0 for one position)."""
        pairs = itertools.pairwise(self.positions_um)
        return max((abs(b - a) for a, b in pairs), default=0.0)

    @property
    def direction(self) -> str:
        return "negative" if self.last_um < self.first_um else "positive"


@dataclass(frozen=True)
class Estimate:
    """What a plan will take, before it starts. Times in seconds, sizes in bytes."""

    move_s: float
    settle_s: float
    shots_s: float
    return_s: float
    frame_bytes: int
    frame_source: str  # where frame_bytes came from, for the user
    frames_bytes: int
    outputs_bytes: int
    warnings: tuple[str, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.move_s + self.settle_s + self.shots_s + self.return_s

    @property
    def disk_bytes(self) -> int:
        return self.frames_bytes + self.outputs_bytes


def estimate(
    plan: Plan,
    profile: Profile,
    *,
    frame_bytes: int | None = None,
    here_um: float | None = None,
    dof: DepthOfField | None = None,
) -> Estimate:
    """Duration, disk space and warnings for ``plan`` on ``profile``'s rig.

    Moves run at ``rail.speed_mm_s`` (acceleration ignored); a move against the approach side
    adds the backlash overshoot and back. Each position settles ``rail.settle_s`` once and
    takes :data:`SHOT_S` per shot. ``here_um``: where the rail is, for the move to the first
    position (None: it is there). ``frame_bytes`` None: from the camera's image format setting
    (:func:`frame_size`). ``dof`` None: from the profile's optics.
    """
    r = profile.rail
    speed = r.speed_mm_s * 1000.0
    path = [plan.first_um if here_um is None else here_um, *plan.positions_um]

    def move(a: float, b: float) -> float:
        return _move_um(a, b, plan.approach, r.backlash_um)

    distance = sum(move(a, b) for a, b in itertools.pairwise(path))
    back = move(plan.last_um, plan.first_um) if plan.return_to_start else 0.0
    source = "given"
    if frame_bytes is None:
        frame_bytes, source = frame_size(profile)
    outputs = sum(OUTPUT_BYTES.get(name, 0) for name in profile.stacking.outputs)
    return Estimate(
        move_s=distance / speed,
        settle_s=plan.count * plan.settle_s,
        shots_s=plan.frames * SHOT_S,
        return_s=back / speed,
        frame_bytes=frame_bytes,
        frame_source=source,
        frames_bytes=plan.frames * frame_bytes,
        outputs_bytes=outputs,
        warnings=tuple(plan_warnings(plan, profile, dof)),
    )


def frame_size(profile: Profile) -> tuple[int, str]:
    """Bytes per shot from the camera's image format setting (a RAW+JPEG body writes both),
    and where the figure came from. Sizes are :data:`FRAME_BYTES`, at 24 MP."""
    settings = profile.camera.settings
    key = next((k for k in FORMAT_KEYS if k in settings), None)
    if key is None:
        return FRAME_BYTES["jpeg"], "no image format in the profile: assumed a 24 MP JPEG"
    value = settings[key]
    kinds = format_kinds(value)
    if not kinds:
        return FRAME_BYTES["jpeg"], f'{key} = "{value}" not recognised: assumed a 24 MP JPEG'
    names = " + ".join(k.upper() for k in kinds)
    return sum(FRAME_BYTES[k] for k in kinds), f'{key} = "{value}": {names} at 24 MP'


def plan_warnings(plan: Plan, profile: Profile, dof: DepthOfField | None = None) -> list[str]:
    """What looks wrong with ``plan`` on this rig; nothing here stops a run."""
    out: list[str] = []
    if dof is None:
        try:
            dof = depth_of_field(profile.optics)
        except ValueError:
            dof = None  # the optics are reported where they are printed
    if dof is not None and plan.count > 1 and plan.step_um > dof.um * (1 + 1e-9):
        out.append(
            f"step {plan.step_um:.4g} um is larger than the depth of field {dof.um:.4g} um: "
            f"bands of blur between frames; use {dof.step_um:.4g} um or less"
        )
    if plan.count < 3:
        out.append(f"only {plan.count} positions: a stack needs 3 or more to be worth fusing")
    r = profile.rail
    if r.backlash_um > 0 and plan.count > 1 and plan.direction != plan.approach:
        out.append(
            f"shooting {plan.direction} with rail.approach = {plan.approach}: every shot "
            f"overshoots by the {r.backlash_um:g} um backlash and comes back (slower); shoot "
            "from the other end, or change rail.approach"
        )
    if not plan.relative:
        out += outside_limits(_overshoots(plan, r.backlash_um), profile, "backlash overshoot")
    if r.soft_min_um is None and r.soft_max_um is None and plan.travel_um > DEFAULT_TRAVEL_UM:
        out.append(
            f"the plan spans {plan.travel_um / 1000:.1f} mm and no soft limits are set: moves "
            f"over {DEFAULT_TRAVEL_UM / 1000:.0f} mm are refused; set rail.soft_min_um and "
            "rail.soft_max_um"
        )
    return out


def disk_shortfall(
    plan: Plan,
    profile: Profile,
    root: Path,
    free_bytes: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free,
) -> str | None:
    """What is missing when the frames and the stack will not fit below ``root``, or None.

    ``root`` need not exist yet: its nearest existing parent is asked.
    """
    need = estimate(plan, profile).disk_bytes
    existing = next(p for p in (root, *root.parents) if p.exists())
    free = free_bytes(existing)
    if free >= need:
        return None
    return (
        f"the shoot needs about {need / 1e9:.1f} GB (frames and stack) but {existing} has "
        f"{free / 1e9:.1f} GB free"
    )


def outside_limits(
    positions: Iterable[float], profile: Profile, what: str = "position"
) -> list[str]:
    """One line per soft limit that ``positions`` cross, naming the limit."""
    r = profile.rail
    values = list(positions)
    out = []
    if r.soft_min_um is not None and values and min(values) < r.soft_min_um:
        out.append(
            f"{what} {min(values):.1f} um is below rail.soft_min_um ({r.soft_min_um:g} um): "
            "move the range up, or widen the limit in the profile"
        )
    if r.soft_max_um is not None and values and max(values) > r.soft_max_um:
        out.append(
            f"{what} {max(values):.1f} um is above rail.soft_max_um ({r.soft_max_um:g} um): "
            "move the range down, or widen the limit in the profile"
        )
    return out


# -- helpers -----------------------------------------------------------------------------------


def step_for(profile: Profile, step_um: float | None = None) -> float:
    """The step given, else the profile's, else the optics' suggestion."""
    if step_um is not None:
        return step_um
    if profile.plan.step_um is not None:
        return profile.plan.step_um
    try:
        return depth_of_field(profile.optics).step_um
    except ValueError as exc:
        raise PlanError(f"no step: give --step or plan.step_um ({exc})") from None


def _check_range(start_um: float, end_um: float) -> None:
    if not (math.isfinite(start_um) and math.isfinite(end_um)):
        raise PlanError("start and end must be numbers: give micrometres")
    if start_um == end_um:
        raise PlanError(
            f"start and end are both {start_um:g} um: set the end on the other side of the "
            "subject, or use --count from one point"
        )


def _check_step(step_um: float) -> None:
    if not math.isfinite(step_um) or step_um <= 0:
        raise PlanError(f"step {step_um:g} um: give a step > 0 micrometres")


def _check_count(count: int) -> None:
    if count < 2:
        raise PlanError(f"count {count}: a stack needs 2 or more positions; give a larger count")
    if count > MAX_POSITIONS:
        raise PlanError(f"count {count}: more than {MAX_POSITIONS} positions; give a smaller count")


def _rounded(positions: list[float]) -> tuple[float, ...]:
    # To the nanometre: 0.1 + 0.2 prints as 0.3, and no rail resolves less.
    return tuple(round(p, 3) + 0.0 for p in positions)  # + 0.0: no -0.0


def _move_um(start: float, target: float, approach: str, backlash_um: float) -> float:
    """Distance travelled from ``start`` to ``target``, with the overshoot when arriving from
    the wrong side (as rig.devices.motion.Rail.path does)."""
    sign = 1.0 if approach == "positive" else -1.0
    wrong_side = (target - start) * sign < 0
    return abs(target - start) + (2.0 * backlash_um if wrong_side and backlash_um > 0 else 0.0)


def _overshoots(plan: Plan, backlash_um: float) -> list[float]:
    """Where backlash overshoots go: past every position when shooting against the approach
    side, else past the start on the way back (the return arrives from the wrong side)."""
    if backlash_um == 0 or plan.count < 2:
        return []
    sign = 1.0 if plan.approach == "positive" else -1.0
    if plan.direction != plan.approach:
        return [p - sign * backlash_um for p in plan.positions_um[1:]]
    return [plan.first_um - sign * backlash_um] if plan.return_to_start else []
