"""`stackrig stack` as a user runs it: files in, result + report + depth map out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from rig.cli import main
from stacking import io
from stacking.depthmap import render_depth

EXAMPLE = Path(__file__).parent / "data" / "pcb"


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for src in sorted(EXAMPLE.glob("*.jpg"))[:4]:
        img = cv2.imread(str(src))
        small = cv2.resize(img, (384, 288), interpolation=cv2.INTER_AREA)
        # frame_2 must come before frame_10: natural order, not text order.
        number = {0: 1, 1: 2, 2: 10, 3: 11}[len(list(folder.iterdir()))]
        cv2.imwrite(str(folder / f"frame_{number}.jpg"), small)
    return folder


def test_stack_folder_writes_result_report_and_depth(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (frames / "notes.txt").write_text("not an image")
    out = tmp_path / "result.tif"
    code = main(["stack", str(frames), "-o", str(out), "--depth-map", str(tmp_path / "d.png")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "skipped" in err and "notes.txt" in err
    assert "stacked 4 of 4 frames" in err and "s/frame" in err and "peak memory" in err
    result = io.read_image(out)
    assert result.pixels.shape == (288, 384, 3) and result.bit_depth == 8
    report = json.loads((tmp_path / "result.tif.stack.json").read_text())
    assert [f["name"] for f in report["frames"]] == [
        "frame_1.jpg",
        "frame_2.jpg",
        "frame_10.jpg",
        "frame_11.jpg",
    ]
    depth = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.max() <= 3
    # The colour rendering is an indexed-colour PNG of the same map, full colour in any viewer.
    with Image.open(tmp_path / "d-colour.png") as colour:
        assert colour.mode == "P"
        np.testing.assert_array_equal(np.asarray(colour.convert("RGB")), render_depth(depth, 4))
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].compression == 1  # uncompressed unless asked


def test_stack_compress_writes_a_zlib_tiff(frames: Path, tmp_path: Path) -> None:
    plain, small = tmp_path / "plain.tif", tmp_path / "small.tif"
    assert main(["stack", str(frames), "-o", str(plain), "-q"]) == 0
    assert main(["stack", str(frames), "-o", str(small), "-q", "--compress"]) == 0
    with tifffile.TiffFile(small) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    np.testing.assert_array_equal(tifffile.imread(small), tifffile.imread(plain))
    assert small.stat().st_size < plain.stat().st_size


def test_reuse_alignment_skips_estimation(frames: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    assert main(["stack", str(frames), "-o", str(out), "-q"]) == 0
    first = json.loads((tmp_path / "r.png.stack.json").read_text())["frames"]
    assert (
        main(
            [
                "stack",
                str(frames),
                "-o",
                str(out),
                "-q",
                "--method",
                "weighted",
                "--reuse-alignment",
            ]
        )
        == 0
    )
    second = json.loads((tmp_path / "r.png.stack.json").read_text())["frames"]
    assert all(f["method"] == "given" for f in second[1:])
    assert [f["transform"] for f in first] == [f["transform"] for f in second]


def test_corrupt_frame_skipped_by_name_or_stops_with_strict(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (frames / "frame_10.jpg").read_bytes()
    (frames / "frame_10.jpg").write_bytes(data[: len(data) // 2])
    assert main(["stack", str(frames), "-o", str(tmp_path / "a.jpg"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "frame_10.jpg" in err and "truncated" in err and "stacked 3 of 4" in err
    assert main(["stack", str(frames), "-o", str(tmp_path / "b.jpg"), "-q", "--strict"]) == 1
    assert "frame_10.jpg" in capsys.readouterr().err
    assert not (tmp_path / "b.jpg").exists()


def test_a_frame_of_another_size_is_named_and_skipped(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = cv2.imread(str(frames / "frame_2.jpg"))
    cv2.imwrite(str(frames / "frame_2.jpg"), cv2.resize(img, (300, 200)))
    assert main(["stack", str(frames), "-o", str(tmp_path / "x.tif"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "frame_2.jpg not used: frame is 300x200 but the stack is 384x288" in err
    assert "stacked 3 of 4 frames" in err
    assert main(["stack", str(frames), "-o", str(tmp_path / "y.tif"), "-q", "--strict"]) == 1
    err = capsys.readouterr().err
    assert "frame_2.jpg: frame is 300x200" in err and "same size" in err
    assert not (tmp_path / "y.tif").exists() and not (tmp_path / "y.tif.stack.json").exists()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["stack"])
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_empty_folder_and_missing_path_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["stack", str(tmp_path / "empty"), "-o", str(tmp_path / "o.tif")]) == 1
    assert "no images found" in capsys.readouterr().err
    assert main(["stack", str(tmp_path / "nope"), "-o", str(tmp_path / "o.tif")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_console_script_runs_on_bundled_example(tmp_path: Path) -> None:
    exe = shutil.which("stackrig") or str(Path(sys.executable).with_name("stackrig"))
    out = tmp_path / "pcb.tif"
    run = subprocess.run(
        [exe, "stack", str(EXAMPLE), "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "stacked 7 of 7 frames" in run.stderr
    assert io.read_image(out).pixels.shape == (768, 1024, 3)


def test_all_frames_unreadable_fails_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"\xff\xd8\xff garbage")
    assert main(["stack", str(folder), "-o", str(tmp_path / "o.tif"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "none of the 2 frames could be read" in err and "a.jpg" in err
    assert not (tmp_path / "o.tif").exists()


def test_profile_settings_with_explicit_overrides(frames: Path, tmp_path: Path) -> None:
    profile = tmp_path / "weighted.toml"
    profile.write_text(
        'schema_version = 2\nname = "w"\n[stacking]\nmethod = "weighted"\nalign = "translation"\n'
    )
    out = tmp_path / "r.tif"
    assert main(["stack", str(frames), "-o", str(out), "-q", "--profile", str(profile)]) == 0
    used = json.loads((tmp_path / "r.tif.stack.json").read_text())["settings"]
    assert used["method"] == "weighted" and used["align"] == "translation"
    args = ["stack", str(frames), "-o", str(out), "-q", "--profile", str(profile)]
    assert main([*args, "--method", "depthmap"]) == 0
    used = json.loads((tmp_path / "r.tif.stack.json").read_text())["settings"]
    assert used["method"] == "depthmap" and used["align"] == "translation"


def test_files_named_one_by_one_are_stacked_in_that_order_and_a_repeat_once(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = [frames / n for n in ("frame_11.jpg", "frame_2.jpg", "frame_10.jpg", "frame_11.jpg")]
    out = tmp_path / "back-to-front.tif"
    assert main(["stack", *map(str, named), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "frame_11.jpg: the same file as" in err and "stacked once" in err
    report = json.loads((tmp_path / "back-to-front.tif.stack.json").read_text())
    assert [f["name"] for f in report["frames"]] == ["frame_11.jpg", "frame_2.jpg", "frame_10.jpg"]


def test_mono_16_bit_frames_stack_to_a_mono_16_bit_tiff_with_true_metadata(
    frames: Path, tmp_path: Path
) -> None:
    mono = tmp_path / "mono"
    mono.mkdir()
    for src in sorted(frames.glob("*.jpg")):
        gray = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 16
        tifffile.imwrite(mono / f"{src.stem}.tif", gray)  # tifffile's own shape description
    out = tmp_path / "mono-stack.tif"
    assert main(["stack", str(mono), "-o", str(out), "-q"]) == 0
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.shape == (288, 384) and page.dtype == np.uint16
        assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert "shape" not in (page.description or "")  # not the input's layout
        assert tif.series[0].shape == (288, 384)  # consistent: no "shape does not match"
