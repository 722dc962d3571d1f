"""Every value a user can type: an answer (exit 0, 1 or 2, a message naming the option or key),
never a traceback, an internal error or a wrong result; every output path is checked before
the work starts and nothing on disk changes when a run is refused."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rig.cli import main
from rig.devices.emulators.grbl import GrblEmulator
from rig.devices.rails.grbl import GrblDriver
from rig.profiles import load_profile, user_dir
from rig.profiles.schema import SECTIONS, Check
from stacking import io

EXAMPLE = Path(__file__).parent / "data" / "pcb"
STACKRIG = [sys.executable, "-m", "rig.cli"]
TYPED = ("0", "-1", "1e308", "nan", "inf", "-inf", "abc", "")  # what every number option gets


# -- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def no_traceback(code: int | None, err: str) -> None:
    assert code in (0, 1, 2), err
    for sign in ("Traceback", "internal error", "Exception ignored", "Logging error"):
        assert sign not in err, err


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> Ran:
    """``stackrig ARGV`` in this process; argparse's refusals (SystemExit 2) are answers too."""
    try:
        code: Any = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    no_traceback(code, err)
    return Ran(code, out, err)


def stackrig(*argv: object, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``stackrig ARGV`` in a fresh process (libgphoto2 reads VCAMERADIR when it loads)."""
    run = subprocess.run(
        [*STACKRIG, *map(str, argv)], capture_output=True, text=True,
        errors="backslashreplace", timeout=120, **popen,
    )  # fmt: skip
    no_traceback(run.returncode, run.stderr)
    return run


def disk(*roots: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``roots``, hidden temp files included: bytes and mtime."""
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.name.endswith(".tmp")]


def fs_path(folder: Path, name: bytes) -> Path:
    """A path whose file name is not UTF-8, as the OS hands it to Python."""
    return folder / os.fsdecode(name)


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for n, src in enumerate(sorted(EXAMPLE.glob("*.jpg"))[:3], 1):
        small = cv2.resize(cv2.imread(str(src)), (192, 144), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"frame_{n}.jpg"), small)
    return folder


def stack(capsys: pytest.CaptureFixture[str], *argv: object) -> Ran:
    return cli(capsys, "stack", *argv, "-q")


def report_of(image: Path) -> dict[str, Any]:
    return json.loads(image.with_name(image.name + ".stack.json").read_bytes().decode("utf-8"))


# -- numbers: stack ----------------------------------------------------------------------------

STACK_OPTIONS = ("--window", "--sharpen", "--threads", "--bit-depth")
# Accepted values and what the result must show; every other typed value is refused (exit 2).
STACK_ACCEPTS: dict[tuple[str, str], Callable[[Path], bool]] = {
    ("--sharpen", "0"): lambda out: report_of(out)["settings"]["sharpen"] == 0.0,
    ("--sharpen", "0.5"): lambda out: report_of(out)["settings"]["sharpen"] == 0.5,
    ("--window", "9"): lambda out: report_of(out)["settings"]["window"] == 9.0,
    ("--threads", "1"): lambda out: len(report_of(out)["frames"]) == 3,
    ("--bit-depth", "16"): lambda out: io.read_image(out).bit_depth == 16,
    ("--bit-depth", "8"): lambda out: io.read_image(out).bit_depth == 8,
}
STACK_REFUSES = {("--window", "100000"): 2, ("--window", "200"): 1}  # 1: wider than the frames


@pytest.mark.parametrize(
    ("option", "value"),
    [*itertools.product(STACK_OPTIONS, TYPED), *STACK_ACCEPTS, *STACK_REFUSES],
)
def test_stack_numbers(
    option: str, value: str, frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.tif"
    before = disk(tmp_path)
    ran = stack(capsys, frames, "-o", out, option, value)
    accepted = STACK_ACCEPTS.get((option, value))
    if accepted is not None:
        assert ran.code == 0, ran.err
        assert accepted(out)
        return
    assert ran.code == STACK_REFUSES.get((option, value), 2), ran.err
    assert option in ran.err
    assert disk(tmp_path) == before  # refused, not run


# -- numbers: rail -----------------------------------------------------------------------------

RAIL_OPTIONS = ("--speed", "--backlash", "--steps-per-mm", "move", "jog")
# Accepted values and the position the rail must end at (moves of 100 um for the options),
# within one motor step: the emulated GRBL axis has 250 steps/mm and stops on whole steps.
STEP_UM = 4.0
RAIL_ACCEPTS = {
    ("--backlash", "0"): 100.0,
    ("--backlash", "20"): 100.0,
    ("--speed", "50"): 100.0,
    ("--steps-per-mm", "800"): 100.0,
    ("move", "0"): 0.0,
    ("move", "-1"): -1.0,
    ("move", "250"): 250.0,
    ("jog", "0"): 0.0,
    ("jog", "-1"): -1.0,
    ("jog", "5000"): 5000.0,  # 0.1 s of motion: the position printed is where it stopped
}
RAIL_REFUSES = {("--speed", "100000"), ("--backlash", "-5"), ("--steps-per-mm", "-5")}
RAIL_REFUSES |= {("move", v) for v in ("0x10", "12abc", "1e9")}


@pytest.fixture
def grbl() -> Iterator[GrblEmulator]:
    """A controller the operator has zeroed (absolute moves need a reference)."""
    with GrblEmulator() as emu:
        driver = GrblDriver(emu.path)
        driver.connect()
        driver.set_zero()
        driver.close()
        yield emu  # type: ignore[misc]


@pytest.mark.parametrize(
    ("option", "value"),
    [*itertools.product(RAIL_OPTIONS, TYPED), *RAIL_ACCEPTS, *sorted(RAIL_REFUSES)],
)
def test_rail_numbers(
    option: str, value: str, grbl: GrblEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["rail", "--port", grbl.path, "--protocol", "grbl", "--speed", "50"]
    given = [option, value] if option.startswith("--") else []
    action = ["move", "100"] if given else [option, value]
    ran = cli(capsys, *base, *action, *given)
    end = RAIL_ACCEPTS.get((option, value))
    if end is not None:
        assert ran.code == 0, ran.err
        position = float(ran.out.split("position: ")[1].split()[0])
        assert position == pytest.approx(end, abs=STEP_UM)
        return
    assert ran.code == 2, ran.err
    assert (option if given else "UM") in ran.err
    assert grbl.moves == []


# -- numbers: profile keys (the same validation as the options) --------------------------------

NUMBER_KEYS = {
    f"{section}.{f.name}": f.metadata["check"]
    for section, cls in SECTIONS.items()
    for f in dataclasses.fields(cls)
    if f.metadata["check"].kind in ("float", "int")
}
TOML_TYPED = (*TYPED[:-2], '"abc"', '""', "99999999999999999999")


def within(check: Check, value: float) -> bool:
    return (
        math.isfinite(value)
        and (check.ge is None or value >= check.ge)
        and (check.gt is None or value > check.gt)
        and (check.le is None or value <= check.le)
    )


@pytest.mark.parametrize(("key", "value"), list(itertools.product(NUMBER_KEYS, TOML_TYPED)))
def test_profile_numbers(
    key: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section, name = key.split(".")
    path = tmp_path / "p.toml"
    path.write_text(f'schema_version = 2\nname = "p"\n[{section}]\n{name} = {value}\n')
    ran = cli(capsys, "profile", "validate", path)
    typed = tomllib.loads(path.read_text())[section][name]
    if ran.code == 0:
        got = getattr(getattr(load_profile(path), section), name)
        assert math.isclose(got, typed) and within(NUMBER_KEYS[key], got)
    else:
        assert ran.code == 1 and f"{key} = " in ran.err


# -- output paths of a stack -------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """``stack FRAMES ARGV`` ({d}: the test's folder) must fail with ``says``, writing nothing."""

    argv: tuple[str, ...]
    says: str
    existing: tuple[str, ...] = ()  # files made first, by someone else
    code: int = 1
    dangling: tuple[str, ...] = ()  # links to nowhere, made first


REFUSED = {
    "read-only folder /proc": Refused(("-o", "/proc/x.tif"), "cannot be written"),
    "read-only folder /sys": Refused(("-o", "/sys/x.tif"), "cannot be written"),
    "depth map in a read-only folder": Refused(
        ("-o", "{d}/o.tif", "--depth-map", "/proc/d.png"), "cannot be written"
    ),
    "onto an input": Refused(("-o", "{d}/frames/frame_2.jpg"), "one of the input frames"),
    "onto an input by another spelling": Refused(
        ("-o", "{d}/frames/../frames/frame_1.jpg"), "one of the input frames"
    ),
    "depth map onto an input": Refused(
        ("-o", "{d}/o.tif", "--depth-map", "{d}/frames/frame_1.jpg"), "one of the input frames"
    ),
    "depth map is -o": Refused(("-o", "{d}/o.png", "--depth-map", "{d}/o.png"), "same file"),
    "depth colour is -o": Refused(
        ("-o", "{d}/d-colour.png", "--depth-map", "{d}/d.png"), "same file"
    ),
    "existing file": Refused(("-o", "{d}/o.tif"), "did not make it", ("o.tif",)),
    "existing report": Refused(("-o", "{d}/o.tif"), "did not make it", ("o.tif.stack.json",)),
    "existing depth map": Refused(
        ("-o", "{d}/o.tif", "--depth-map", "{d}/d.png"), "did not make it", ("d.png",)
    ),
    "existing link to nowhere": Refused(
        ("-o", "{d}/o.tif"), "did not make it", dangling=("o.tif",)
    ),
    "unknown extension": Refused(("-o", "{d}/o.bmp"), "give the file one of these extensions"),
    "no extension": Refused(("-o", "{d}/o"), "give the file one of these extensions"),
    "depth map extension": Refused(
        ("-o", "{d}/o.tif", "--depth-map", "{d}/d.txt"), "give the file one of these extensions"
    ),
    "-o is a folder": Refused(("-o", "{d}/frames"), "is a folder"),
    "depth map is a folder": Refused(("-o", "{d}/o.tif", "--depth-map", "{d}"), "is a folder"),
    "folder missing": Refused(("-o", "{d}/nope/o.tif"), "does not exist"),
    "no earlier report": Refused(
        ("-o", "{d}/o.tif", "--reuse-alignment"), "stack once without", code=2
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED)
def test_stack_output_refused_before_work(
    case: Refused, frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in case.existing:
        (tmp_path / name).write_bytes(b"someone else's file")
    for name in case.dangling:
        (tmp_path / name).symlink_to(tmp_path / "nowhere")
    before = disk(tmp_path)
    ran = stack(capsys, frames, *(a.format(d=tmp_path) for a in case.argv))
    assert ran.code == case.code and case.says in ran.err, ran.err
    assert "stacked" not in ran.err
    assert disk(tmp_path) == before
    assert all((tmp_path / name).is_symlink() for name in case.dangling)


def test_rerun_into_the_frames_folder_skips_its_own_results(
    frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = (frames, "-o", frames / "result.tif", "--depth-map", frames / "depth.png")
    inputs = disk(frames)
    assert stack(capsys, *argv).code == 0
    again = stack(capsys, *argv)
    assert again.code == 0 and "stacked 3 of 3 frames" in again.err
    for name in ("result.tif", "depth.png", "depth-colour.png"):
        assert f"skipped {frames / name}: a stackrig result" in again.err
    assert {k: v for k, v in disk(frames).items() if k in inputs} == inputs
    assert not temp_files(frames)


def test_png_and_jpg_results_keep_separate_reports(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png, jpg = tmp_path / "out.png", tmp_path / "out.jpg"
    assert stack(capsys, frames, "-o", png).code == 0
    first = (tmp_path / "out.png.stack.json").read_bytes()
    assert stack(capsys, frames, "-o", jpg).code == 0
    assert (tmp_path / "out.png.stack.json").read_bytes() == first
    assert report_of(png)["output"] == "out.png" and report_of(jpg)["output"] == "out.jpg"


EMPTY = {  # '' (an unset shell variable) is refused, never taken as "here" or "not given"
    "stack INPUT": ("stack", "", "-o", "{d}/o.tif"),
    "stack -o": ("stack", "{d}/frames", "-o", ""),
    "stack --depth-map": ("stack", "{d}/frames", "-o", "{d}/o.tif", "--depth-map", ""),
    "stack --reuse-alignment": ("stack", "{d}/frames", "-o", "{d}/o.tif", "--reuse-alignment", ""),
    "stack --profile": ("stack", "{d}/frames", "-o", "{d}/o.tif", "--profile", ""),
    "rail --profile": ("rail", "--profile", "", "--protocol", "grbl", "status"),
    "profile new --from": ("profile", "new", "x", "--from", ""),
    "profile import --name": ("profile", "import", "{d}/frames", "--name", ""),
    "profile export FILE": ("profile", "export", "simulated", ""),
}


@pytest.mark.parametrize("argv", EMPTY.values(), ids=EMPTY)
def test_empty_values_are_refused(
    argv: tuple[str, ...], frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = disk(tmp_path, user_dir())
    ran = cli(capsys, *(a.format(d=tmp_path) for a in argv))
    assert ran.code == 2 and "'' is empty" in ran.err, ran.err
    assert disk(tmp_path, user_dir()) == before


def test_names_that_are_not_utf8(frames: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(frames / "frame_3.jpg", fs_path(frames, b"frame_\xff.jpg"))
    out = fs_path(frames, b"out_\xfe.tif")
    ran = stack(capsys, frames, "-o", out)
    assert ran.code == 0 and "stacked 4 of 4 frames" in ran.err
    assert "out_\\udcfe.tif" in ran.err  # the name printed, escaped
    report = report_of(out)  # UTF-8 JSON, the names escaped
    assert os.fsdecode(b"frame_\xff.jpg") in [f["name"] for f in report["frames"]]
    again = stack(capsys, frames, "-o", out)  # the result is known as ours by its escaped name
    assert again.code == 0 and "a stackrig result" in again.err


def test_profile_named_not_utf8(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fs_path(tmp_path, b"rig_\xff.toml")
    assert cli(capsys, "profile", "export", "simulated", path).code == 0
    validated = cli(capsys, "profile", "validate", path)
    assert validated.code == 0 and "rig_\\udcff.toml: valid" in validated.out
    assert cli(capsys, "profile", "import", path, "--name", "imported").code == 0
    assert stack(capsys, frames, "-o", tmp_path / "o.tif", "--profile", path).code == 0


# -- frame sizes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    cv2.imwrite(str(path), np.zeros((30000, 30000), np.uint8))  # ~1 MB on disk
    return path


def test_a_huge_frame_is_refused_quickly(
    huge_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    ran = stack(capsys, huge_png, "-o", tmp_path / "o.tif")
    assert ran.code == 1 and "30000x30000" in ran.err and "200 MP" in ran.err
    assert time.monotonic() - start < 5
    assert not list(tmp_path.iterdir())


def test_a_huge_frame_among_others_is_named_and_skipped(
    huge_png: Path, frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (frames / "frame_9.png").symlink_to(huge_png)
    ran = stack(capsys, frames, "-o", tmp_path / "o.tif")
    assert ran.code == 0 and "stacked 3 of 4 frames" in ran.err
    assert "frame_9.png not used: is 30000x30000" in ran.err and "200 MP" in ran.err


# -- a damaged --reuse-alignment report --------------------------------------------------------


def frame_entry(index: int, name: str) -> dict[str, Any]:
    return {
        "index": index, "name": name, "accepted": True, "reason": None,
        "transform": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        "gain": [1.0, 1.0, 1.0], "offset": [0.0, 0.0, 0.0], "confidence": 1.0,
        "method": "given", "sharpness": 0.1, "seconds": 0.0,
    }  # fmt: skip


DAMAGED: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "transform text": (lambda f: f.update(transform="x"), "transform"),
    "transform null": (lambda f: f.update(transform=None), "transform"),
    "transform 2x2": (lambda f: f.update(transform=[[1, 0], [0, 1]]), "transform"),
    "transform nan": (lambda f: f["transform"][0].__setitem__(0, math.nan), "transform"),
    "transform singular": (lambda f: f.update(transform=[[0] * 3] * 3), "transform"),
    "gain text": (lambda f: f.update(gain="a"), "gain"),
    "gain of text": (lambda f: f.update(gain=["a", 1, 1]), "gain"),
    "gain zero": (lambda f: f.update(gain=[0, 1, 1]), "gain"),
    "index negative": (lambda f: f.update(index=-1), "index"),
    "key missing": (lambda f: f.pop("offset"), "missing offset"),
    "name other": (lambda f: f.update(name="other.jpg"), "no alignment for frame_2.jpg"),
}


@pytest.mark.parametrize(("damage", "says"), DAMAGED.values(), ids=DAMAGED)
def test_damaged_reuse_report(
    damage: Callable[[dict[str, Any]], object],
    says: str,
    frames: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    entries = [frame_entry(i, f"frame_{i + 1}.jpg") for i in range(3)]
    damage(entries[1])
    report = tmp_path / "earlier.json"
    report.write_text(json.dumps({"frames": entries}, allow_nan=True))
    before = disk(tmp_path)
    ran = stack(capsys, frames, "-o", tmp_path / "o.tif", "--reuse-alignment", report)
    assert ran.code == 1 and says in ran.err, ran.err
    assert disk(tmp_path) == before


@pytest.mark.parametrize("text", ["", "{", "[]", '{"frames": 3}', '{"frames": [7]}'])
def test_reuse_report_that_is_not_one(
    text: str, frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "earlier.json"
    report.write_text(text)
    before = disk(tmp_path)
    ran = stack(capsys, frames, "-o", tmp_path / "o.tif", "--reuse-alignment", report)
    assert ran.code == 1 and "earlier.json" in ran.err
    assert disk(tmp_path) == before


# -- camera capture -o -------------------------------------------------------------------------

CAPTURE_REFUSED = {
    "onto a file": (("-o", "{d}/shot.jpg"), 2, "is a file"),
    "into a read-only folder": (("-o", "/proc"), 1, "cannot be written"),
    "a new folder in a read-only one": (("-o", "/proc/shots"), 2, "cannot create it"),
    "-o empty": (("-o", ""), 2, "-o/--output: '' is empty"),
    "--model empty": (("--model", ""), 2, "--model: '' is empty"),
}


@pytest.mark.parametrize(("argv", "code", "says"), CAPTURE_REFUSED.values(), ids=CAPTURE_REFUSED)
def test_camera_capture_refused(
    argv: tuple[str, ...], code: int, says: str, tmp_path: Path
) -> None:
    (tmp_path / "shot.jpg").write_bytes(b"an earlier shot")
    before = disk(tmp_path)
    given = (a.format(d=tmp_path) for a in argv)
    ran = stackrig("camera", "capture", *given, "--simulate", cwd=tmp_path)
    assert ran.returncode == code and says in ran.stderr, ran.stderr
    assert "connected" not in ran.stdout  # refused before the camera was touched
    assert disk(tmp_path) == before


# -- profiles ----------------------------------------------------------------------------------

EXPORT_REFUSED = {
    "onto a folder": ("{d}", 2, "is a folder"),
    "into a missing folder": ("/nonexistent/x.toml", 1, "does not exist"),
    "into a read-only folder": ("/proc/x.toml", 1, "cannot be written"),
    "another extension": ("{d}/x.txt", 2, ".toml extension"),
}


@pytest.mark.parametrize(("target", "code", "says"), EXPORT_REFUSED.values(), ids=EXPORT_REFUSED)
def test_profile_export_refused(
    target: str, code: int, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not Path("/nonexistent").exists()
    before = disk(tmp_path)
    ran = cli(capsys, "profile", "export", "simulated", target.format(d=tmp_path))
    assert ran.code == code and says in ran.err, ran.err
    assert disk(tmp_path) == before and not Path("/nonexistent").exists()


EDIT_FAILS = {  # EDITOR ({script}: a shell script with this body), and what stackrig says
    "removes its draft": ("{script}", 'rm -- "$1"', "the editor removed its copy"),
    "fails": ("{script}", "exit 3", "failed (exit 3)"),
    "writes bytes that are not UTF-8": ("{script}", "printf '\\377' > \"$1\"", "read back"),
    "unbalanced quotes in EDITOR": ('"{script}', "", "fix its quotes"),
    "not installed": ("/nonexistent/editor", "", "not found"),
}


@pytest.mark.parametrize(("editor", "body", "says"), EDIT_FAILS.values(), ids=EDIT_FAILS)
def test_profile_edit_fails_and_keeps_the_profile(
    editor: str,
    body: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(capsys, "profile", "copy", "simulated", "sim").code == 0
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", editor.format(script=script))
    before = disk(user_dir())
    ran = cli(capsys, "profile", "edit", "sim")
    assert ran.code == 1 and says in ran.err, ran.err
    assert disk(user_dir()) == before


NOT_PROFILES = {  # file content (None: give the path as it is), what stackrig says
    "/dev/zero": (None, "not a profile"),
    "{d}": (None, "Is a directory"),
    "{d}/bytes.toml": (b"name = '\xff'", "not UTF-8"),
    "{d}/bad.toml": (b"name = = 1", "not valid TOML"),
    "{d}/big.toml": (b"#" * 2_000_000, "not a profile"),
}


@pytest.mark.parametrize(("given", "content", "says"), [(k, *v) for k, v in NOT_PROFILES.items()])
def test_profile_import_of_what_is_not_a_profile(
    given: str,
    content: bytes | None,
    says: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = Path(given.format(d=tmp_path))
    if content is not None:
        path.write_bytes(content)
    ran = cli(capsys, "profile", "import", path)
    assert ran.code == 1 and says in ran.err, ran.err
    assert not user_dir().exists() or not list(user_dir().iterdir())


@pytest.mark.parametrize("argv", [("profile", "list"), ("profile", "show", "simulated")])
def test_output_into_a_closed_pipe(argv: tuple[str, ...]) -> None:
    """``stackrig profile list | head -1``: the reader is gone; stop quietly."""
    proc = subprocess.Popen([*STACKRIG, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode("utf-8", "backslashreplace")
    no_traceback(proc.wait(timeout=60), err)
    assert err == ""
