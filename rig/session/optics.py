"""Depth of field and focus step from a profile's optics (formulas: ../shared/docs/optics.md).

Three models, each giving the total depth of field in micrometres:

* **classic macro** (Littlefield): the geometric blur stays within the circle of confusion c,
  ``DOF = 2·c·N_eff/m²`` with ``N_eff = N·(1 + m/p)`` (p: pupil ratio, 1 for a symmetric lens);
* **wave optics** (Zerene): a quarter wave of defocus at the object-side aperture
  ``NA = m/(2·N_eff)``, ``DOF = λ/NA²``;
* **microscope objective**: ``DOF = λ·n/NA²``, plus ``n·e/(M·NA)`` when the detector's
  resolvable distance e (about a pixel) is known; n is the refractive index of the medium.

Which one suggests the step. An objective (``optics.numerical_aperture``) has the microscope
model only. A lens (``optics.f_number``) gets the classic and the wave model, and the **larger**
of the two is used, as Zerene's calculator compares them. Each model is pessimistic where its
own blur is not what limits the image: once the effective aperture passes about ``c/(2·λ)``
(f/14 effective for c = 15 µm, so f/4.5 at 2:1) the Airy disk is larger than c, no detail is
finer than diffraction allows, and the classic formula asks for steps finer than anything in
the picture; at wider apertures the sensor's c is the limit and the wave formula is the
pessimistic one. At high magnification diffraction dominates, so the wave model is chosen there.

The suggested step is :data:`STEP_FRACTION` of that depth of field (docs: 0.7-0.8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rig.errors import ProfileError
from rig.profiles.schema import OpticsSection

STEP_FRACTION = 0.75  # of the depth of field: neighbouring sharp zones overlap a little
AIR_INDEX = 1.0
OIL_INDEX = 1.515  # assumed for NA above 1 when no refractive index is given
MAX_NA = 1.6  # beyond the best oil-immersion objectives: a typo, not a lens
MIN_F_NUMBER = 0.5  # the limit of any lens in air

MACRO, WAVE, MICROSCOPE = "classic macro (Littlefield)", "wave optics (Zerene)", "microscope NA"


class OpticsError(ProfileError, ValueError):
    """Optics values no lens or objective can have; the message names the key to change."""


@dataclass(frozen=True)
class Dof:
    """One model's depth of field."""

    model: str  # MACRO, WAVE or MICROSCOPE
    um: float


@dataclass(frozen=True)
class DepthOfField:
    """Every model that applies, the one the step is taken from and why."""

    models: tuple[Dof, ...]
    chosen: Dof
    why: str
    numerical_aperture: float  # object side
    effective_f_number: float | None = None  # lenses only
    refractive_index: float = AIR_INDEX
    notes: tuple[str, ...] = ()  # assumptions made, for the user

    @property
    def um(self) -> float:
        return self.chosen.um

    @property
    def step_um(self) -> float:
        """The suggested focus step."""
        return STEP_FRACTION * self.chosen.um

    def frames_for(self, depth_um: float, step_um: float | None = None) -> int:
        return frames_for_depth(depth_um, self.step_um if step_um is None else step_um)


# -- the formulas ------------------------------------------------------------------------------


def effective_f_number(f_number: float, magnification: float, pupil_ratio: float = 1.0) -> float:
    """The working f-number at the sensor of a lens focused by extension: ``N·(1 + m/p)``."""
    _check_lens(magnification, f_number, pupil_ratio)
    return f_number * (1.0 + magnification / pupil_ratio)


def macro_dof_um(
    magnification: float, f_number: float, coc_um: float, pupil_ratio: float = 1.0
) -> float:
    """Classic geometric depth of field, ``2·c·N_eff/m²``."""
    _positive("optics.coc_um", coc_um, "the circle of confusion on the sensor, e.g. 15")
    n_eff = effective_f_number(f_number, magnification, pupil_ratio)
    return 2.0 * coc_um * n_eff / magnification**2


def wave_dof_um(
    magnification: float, f_number: float, wavelength_nm: float = 550.0, pupil_ratio: float = 1.0
) -> float:
    """Diffraction (quarter-wave) depth of field of a lens, ``λ/NA²`` with ``NA = m/(2·N_eff)``."""
    na = magnification / (2.0 * effective_f_number(f_number, magnification, pupil_ratio))
    return _wavelength_um(wavelength_nm) / na**2


def microscope_dof_um(
    numerical_aperture: float,
    wavelength_nm: float = 550.0,
    refractive_index: float = AIR_INDEX,
    magnification: float | None = None,
    pixel_um: float | None = None,
) -> float:
    """An objective's depth of field, ``λ·n/NA²``, ``+ n·e/(M·NA)`` with a pixel size e."""
    _check_na(numerical_aperture, refractive_index)
    n, na = refractive_index, numerical_aperture
    dof = _wavelength_um(wavelength_nm) * n / na**2
    if pixel_um is not None:
        _positive("pixel size", pixel_um, "the detector's pixel pitch in micrometres")
        if magnification is None:
            raise OpticsError("a pixel size needs optics.magnification (the objective's M)")
        _positive("optics.magnification", magnification, "the objective's magnification")
        dof += n * pixel_um / (magnification * na)
    return dof


def frames_for_depth(depth_um: float, step_um: float) -> int:
    """Frames to cover ``depth_um`` at ``step_um``: ``ceil(depth/step) + 1``."""
    if not math.isfinite(depth_um) or depth_um < 0:
        raise OpticsError(f"subject depth {depth_um:g} um: give a depth of 0 or more")
    _positive("step", step_um, "a step in micrometres")
    return math.ceil(depth_um / step_um - 1e-9) + 1  # 1e-9: 1000/100 is 10 steps, not 11


# -- from a profile ----------------------------------------------------------------------------


def depth_of_field(
    optics: OpticsSection,
    *,
    pupil_ratio: float = 1.0,
    refractive_index: float | None = None,
    pixel_um: float | None = None,
) -> DepthOfField:
    """Depth of field for ``optics``: the microscope model for an NA, else classic and wave.

    ``refractive_index`` None: air, or oil (1.515) for an NA above 1, said in ``notes``.
    """
    m, na, lam = optics.magnification, optics.numerical_aperture, optics.wavelength_nm
    _positive("optics.magnification", m, "image size over subject size, e.g. 2 for 2:1")
    _wavelength_um(lam)
    if na is not None:
        notes: list[str] = []
        n = refractive_index
        if n is None:
            n = OIL_INDEX if na > AIR_INDEX else AIR_INDEX
            if na > AIR_INDEX:
                notes.append(f"NA {na:g} is above 1: assumed oil immersion, n = {OIL_INDEX}")
        chosen = Dof(MICROSCOPE, microscope_dof_um(na, lam, n, m, pixel_um))
        why = "an objective is rated by its NA: the wave-optics depth of field applies"
        return DepthOfField((chosen,), chosen, why, na, None, n, tuple(notes))
    if optics.f_number is None:
        raise OpticsError(
            "optics: give optics.f_number (lenses) or optics.numerical_aperture (objectives)"
        )
    n_eff = effective_f_number(optics.f_number, m, pupil_ratio)
    macro = Dof(MACRO, macro_dof_um(m, optics.f_number, optics.coc_um, pupil_ratio))
    wave = Dof(WAVE, wave_dof_um(m, optics.f_number, lam, pupil_ratio))
    if wave.um >= macro.um:
        chosen = wave
        why = (
            f"diffraction blur at effective f/{n_eff:.3g} exceeds the {optics.coc_um:g} um "
            "circle of confusion, so the classic formula is too pessimistic"
        )
    else:
        chosen = macro
        why = (
            f"at effective f/{n_eff:.3g} the {optics.coc_um:g} um circle of confusion limits "
            "sharpness more than diffraction does"
        )
    return DepthOfField((macro, wave), chosen, why, m / (2.0 * n_eff), n_eff)


# -- checks ------------------------------------------------------------------------------------


def _positive(key: str, value: float, what: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise OpticsError(f"{key} = {value:g}: must be a number > 0 ({what})")


def _wavelength_um(wavelength_nm: float) -> float:
    _positive("optics.wavelength_nm", wavelength_nm, "550 for green light")
    if not 200.0 <= wavelength_nm <= 2000.0:
        raise OpticsError(
            f"optics.wavelength_nm = {wavelength_nm:g}: give nanometres (200 to 2000; green "
            "light is 550)"
        )
    return wavelength_nm / 1000.0


def _check_lens(magnification: float, f_number: float, pupil_ratio: float) -> None:
    _positive("optics.magnification", magnification, "image size over subject size")
    _positive("optics.f_number", f_number, "the lens's marked f-number, e.g. 8")
    _positive("pupil ratio", pupil_ratio, "exit over entrance pupil diameter, 1 if unknown")
    if f_number < MIN_F_NUMBER:
        raise OpticsError(
            f"optics.f_number = {f_number:g}: no lens is faster than f/{MIN_F_NUMBER:g}; give the "
            "f-number marked on the lens (for an objective give optics.numerical_aperture)"
        )


def _check_na(na: float, refractive_index: float) -> None:
    _positive("optics.numerical_aperture", na, "marked on the objective, e.g. 0.25")
    _positive("refractive index", refractive_index, "1 for air, 1.515 for oil")
    if na > MAX_NA:
        raise OpticsError(
            f"optics.numerical_aperture = {na:g}: no objective exceeds {MAX_NA:g}; give the NA "
            "marked on the objective (e.g. 0.25 for a 10x)"
        )
    if na > refractive_index:
        raise OpticsError(
            f"optics.numerical_aperture = {na:g} is above the medium's refractive index "
            f"{refractive_index:g}: an NA above 1 needs immersion (oil: 1.515)"
        )
