"""`stackrig plan` as a user runs it: optics, step, frames, plan, estimate, warnings."""

from __future__ import annotations

import pytest

from rig.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_with_depth(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--profile", "grbl-macro-mpe65", "--depth-mm", "5")
    assert code == 0, err
    assert "magnification 3, f/5.6 (effective f/22.4" in out
    assert "    classic macro (Littlefield)  74.67 um" in out
    assert "  * wave optics (Zerene)         122.7 um" in out  # the chosen one is marked
    assert "suggested step: 91.99 um (0.75 x the depth of field)" in out
    assert "subject 5 mm deep: 56 frames at the suggested step (64 at the plan's 80 um)" in out
    assert "plan: 0 -> 5040 um (from the current position), positive, step 80 um, 64" in out
    assert "estimate: 3 min 17 s" in out
    assert "disk: 2.64 GB (64 x 38 MB per frame" in out and "RAW + JPEG" in out


def test_objective_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--profile", "sangaboard-20x")
    assert code == 0
    assert "magnification 20, NA 0.4, 550 nm" in out and "* microscope NA  3.437 um" in out
    assert "plan: 0 -> 97.5 um (from the current position), positive, step 2.5 um, 40" in out


def test_options_override_the_optics(capsys: pytest.CaptureFixture[str]) -> None:
    # Without a profile the defaults apply; a lens option on an objective profile drops its NA.
    code, out, _ = run(capsys, "--magnification", "2", "--f-number", "8")
    assert code == 0 and "180 um" in out and "* wave optics (Zerene)         316.8 um" in out
    assert "plan: none yet" in out
    code, out, _ = run(capsys, "--profile", "sangaboard-20x", "--f-number", "4")
    assert code == 0 and "f/4 (effective f/84" in out
    code, out, _ = run(capsys, "--profile", "simulated", "--na", "0.25", "--count", "5")
    assert code == 0 and "* microscope NA  8.8 um" in out and "5 positions" in out


def test_start_end_plan_with_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--profile", "grbl-macro-mpe65", "--start", "0", "--end", "1000", "--step", "300")
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "plan: 0 -> 1000 um, positive, step 300 um, 5 positions" in out
    assert "warning: step 300 um is larger than the depth of field 122.7 um" in out
    assert "warning: backlash overshoot -100.0 um is below rail.soft_min_um (0 um)" in out
    code, out, _ = run(capsys, "--profile", "grbl-macro-mpe65", "--start", "1000", "--end", "0")
    assert "1000 -> 0 um, negative" in out and "every shot overshoots" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--f-number", "8", "--na", "0.3"), "--f-number (a lens) or --na (an objective)"),
        (("--na", "2"), "--na (optics.numerical_aperture) = 2: no objective exceeds 1.6"),
        (("--magnification", "0"), "--magnification (optics.magnification) = 0.0: must be > 0"),
        (("--start", "0", "--end", "0"), "start and end are both 0 um"),
        (("--count", "1"), "a stack needs 2 or more"),
        (("--start", "0", "--end", "1", "--step", "0"), "give a step > 0"),
        (("--start", "0", "--end", "1", "--step", "0.00001"), "give a larger step"),
        (("--end", "5"), "--end needs --start"),
        (("--depth-mm", "-1"), "--depth-mm -1"),
        (("--profile", "grbl-macro-mpe65", "--start", "0", "--end", "50000"), "rail.soft_max_um"),
    ],
)
def test_usage_errors_exit_2_before_printing(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], words: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and words in err and out == ""


def test_unknown_profile_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--profile", "no-such-profile")
    assert code in (1, 2) and "no-such-profile" in err
