"""Depth of field: the three models against the worked examples in docs/optics.md."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import ProfileError
from rig.profiles.schema import OpticsSection
from rig.session import optics
from rig.session.optics import (
    MACRO,
    MICROSCOPE,
    STEP_FRACTION,
    WAVE,
    OpticsError,
    depth_of_field,
    effective_f_number,
    frames_for_depth,
    macro_dof_um,
    microscope_dof_um,
    wave_dof_um,
)


def test_the_documented_examples() -> None:
    assert macro_dof_um(2, 8, 15) == pytest.approx(180.0)  # Littlefield's table: 0.18 mm
    assert wave_dof_um(1, 16) == pytest.approx(2253, abs=0.5)  # Zerene: 2.253 mm at f/32 eff.
    assert macro_dof_um(1, 16, 30) == pytest.approx(1920.0)  # Zerene: classic 1.92 mm
    assert microscope_dof_um(0.25) == pytest.approx(8.8)  # Zerene table 2-C: 0.0088 mm


def test_effective_aperture_and_pupil_ratio() -> None:
    assert effective_f_number(16, 1) == 32
    assert effective_f_number(8, 2, pupil_ratio=0.5) == pytest.approx(8 * (1 + 2 / 0.5))
    # A retrofocus-like pupil ratio below 1 stops the lens down further: more depth.
    assert macro_dof_um(2, 8, 15, pupil_ratio=0.5) > macro_dof_um(2, 8, 15)


def test_microscope_full_form_and_index() -> None:
    base = microscope_dof_um(0.4, 550, 1.0)
    with_pixel = microscope_dof_um(0.4, 550, 1.0, magnification=20, pixel_um=4.0)
    assert with_pixel == pytest.approx(base + 1.0 * 4.0 / (20 * 0.4))
    assert microscope_dof_um(1.3, 550, 1.515) == pytest.approx(0.55 * 1.515 / 1.3**2)


def test_a_lens_reports_both_models_and_uses_the_larger() -> None:
    # 2:1 at f/8: effective f/24, well past c/(2λ) ≈ f/13.6: diffraction dominates.
    high = depth_of_field(OpticsSection(magnification=2, f_number=8, coc_um=15))
    assert [d.model for d in high.models] == [MACRO, WAVE]
    assert high.chosen.model == WAVE and high.um == pytest.approx(316.8)
    assert "diffraction" in high.why
    assert high.step_um == pytest.approx(STEP_FRACTION * 316.8)
    # 0.5:1 at f/4: effective f/6, the circle of confusion limits.
    low = depth_of_field(OpticsSection(magnification=0.5, f_number=4, coc_um=30))
    assert low.chosen.model == MACRO and low.um == max(d.um for d in low.models)
    assert "circle of confusion" in low.why


def test_an_objective_uses_the_microscope_model() -> None:
    dof = depth_of_field(OpticsSection(magnification=10, f_number=None, numerical_aperture=0.25))
    assert [d.model for d in dof.models] == [MICROSCOPE]
    assert dof.um == pytest.approx(8.8) and dof.effective_f_number is None and not dof.notes
    oil = depth_of_field(OpticsSection(magnification=100, f_number=None, numerical_aperture=1.4))
    assert oil.refractive_index == optics.OIL_INDEX and "oil" in oil.notes[0]
    assert oil.um == pytest.approx(0.55 * optics.OIL_INDEX / 1.4**2)


def test_frames_for_depth() -> None:
    assert frames_for_depth(1000, 100) == 11  # exactly 10 steps: no extra frame
    assert frames_for_depth(1001, 100) == 12
    assert frames_for_depth(0, 100) == 1
    assert depth_of_field(OpticsSection(magnification=2, f_number=8)).frames_for(2000) == 10


@pytest.mark.parametrize(
    ("section", "words"),
    [
        (OpticsSection(magnification=0), "optics.magnification = 0"),
        (OpticsSection(magnification=-1), "optics.magnification = -1"),
        (OpticsSection(f_number=0), "optics.f_number = 0"),
        (OpticsSection(f_number=0.3), "faster than f/0.5"),
        (OpticsSection(coc_um=0), "optics.coc_um = 0"),
        (OpticsSection(wavelength_nm=0.55), "give nanometres"),
        (OpticsSection(f_number=None, numerical_aperture=0), "optics.numerical_aperture = 0"),
        (OpticsSection(f_number=None, numerical_aperture=2.0), "no objective exceeds 1.6"),
        (OpticsSection(f_number=None, numerical_aperture=None), "give optics.f_number"),
        (OpticsSection(magnification=math.inf), "optics.magnification = inf"),
    ],
)
def test_impossible_optics_say_which_key(section: OpticsSection, words: str) -> None:
    with pytest.raises(OpticsError, match=re.escape(words)) as info:
        depth_of_field(section)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ProfileError)


def test_na_above_the_given_index_is_refused() -> None:
    section = OpticsSection(f_number=None, numerical_aperture=1.2)
    with pytest.raises(OpticsError, match="immersion"):
        depth_of_field(section, refractive_index=1.0)
    with pytest.raises(OpticsError, match="magnification"):
        microscope_dof_um(0.4, pixel_um=4.0)


@given(
    m=st.floats(0.05, 50),
    n=st.floats(1, 64),
    c=st.floats(1, 60),
)
def test_models_scale_as_documented(m: float, n: float, c: float) -> None:
    n_eff = n * (m + 1)
    assert macro_dof_um(m, n, c) == pytest.approx(2 * c * n_eff / m**2)
    assert wave_dof_um(m, n) == pytest.approx(4 * 0.55 * n_eff**2 / m**2)
    chosen = depth_of_field(OpticsSection(magnification=m, f_number=n, coc_um=c))
    assert chosen.um == pytest.approx(max(macro_dof_um(m, n, c), wave_dof_um(m, n)))
    # The wave model wins exactly when the effective aperture passes c / (2 λ).
    if not math.isclose(n_eff, c / 1.1, rel_tol=1e-6):
        assert (chosen.chosen.model == WAVE) == (n_eff > c / 1.1)
