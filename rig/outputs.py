"""Where a run's results go, checked before any work starts. No OpenCV here.

The rules every command follows: an output never lands on an input; two outputs of one run
never share a path; a folder is never taken for a file; the folder exists and can really be
written (probed with a file, which also catches read-only mounts, where permission bits lie to
root); an existing file is only replaced when stackrig itself made it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.errors import OutputError
from stacking import files
from stacking.report import REPORT_SUFFIX
from stacking.settings import OUTPUT_FORMATS

log = logging.getLogger("stackrig.outputs")


def report_path(image: Path) -> Path:
    """The report beside a result: ``result.tif`` -> ``result.tif.stack.json``.

    The image's suffix stays in the name, so ``out.png`` and ``out.jpg`` keep separate reports.
    """
    return image.with_name(image.name + REPORT_SUFFIX)


def depth_colour_path(depth_map: Path) -> Path:
    return depth_map.with_name(depth_map.stem + "-colour.png")


@dataclass(frozen=True)
class StackOutputs:
    """Every file one stack writes."""

    image: Path
    report: Path
    depth_map: Path | None = None
    depth_colour: Path | None = None

    @classmethod
    def beside(cls, image: Path, depth_map: Path | None = None) -> StackOutputs:
        colour = depth_colour_path(depth_map) if depth_map is not None else None
        return cls(image, report_path(image), depth_map, colour)

    def paths(self) -> list[Path]:
        return [p for p in (self.image, self.report, self.depth_map, self.depth_colour) if p]


def check_image_suffix(path: Path, what: str = "output") -> None:
    if path.suffix.lower() not in OUTPUT_FORMATS:
        allowed = ", ".join(sorted(OUTPUT_FORMATS))
        raise OutputError(
            f"{what} {path}: stackrig writes {allowed}; give the file one of these extensions"
        )


def check_folder_writable(folder: Path, what: str = "output folder") -> None:
    """``folder`` exists, is a folder, and a file can be created in it right now."""
    if not folder.exists():
        raise OutputError(f"{what} {folder} does not exist; create it first (mkdir -p {folder})")
    if not folder.is_dir():
        raise OutputError(f"{what} {folder} is a file, not a folder; choose a folder")
    probe = files.temp_path(folder / "write-test")
    try:
        with open(probe, "xb"):
            pass
    except OSError as exc:
        raise OutputError(
            f"{what} {folder} cannot be written ({exc.strerror or exc}); choose another folder "
            "or fix its permissions"
        ) from None
    finally:
        probe.unlink(missing_ok=True)


def _not_a_folder(path: Path, what: str) -> None:
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name, e.g. {path / 'out.tif'}")


def check_stack_outputs(
    outputs: StackOutputs, inputs: Sequence[Path], earlier_results: Iterable[Path] = ()
) -> None:
    """Every output of a stack is distinct, lands on no input, and can be written."""
    for path, what in ((outputs.image, "output"), (outputs.depth_map, "depth map")):
        if path is not None:
            _not_a_folder(path, what)
            check_image_suffix(path, what)
    seen: dict[tuple[int, int] | str, Path] = {}
    for path in outputs.paths():
        key = _key(path)
        if key in seen:
            raise OutputError(
                f"{seen[key]} and {path} are the same file: give each output its own name"
            )
        seen[key] = path
    frames = {_key(p): p for p in inputs}
    for path in outputs.paths():
        if _key(path) in frames:
            raise OutputError(
                f"{path} is one of the input frames: stackrig never writes over an input; "
                "choose another output name"
            )
    for path in outputs.paths():  # the report and the colour depth map too
        _not_a_folder(path, "output")
    for folder in {p.parent for p in outputs.paths()}:
        check_folder_writable(folder)  # once per folder
    ours = {_key(p) for p in earlier_results}
    for path in outputs.paths():
        taken = path.exists() or path.is_symlink()  # a link to nowhere is someone's file too
        if taken and _key(path) not in ours:
            raise OutputError(
                f"output {path} exists and stackrig did not make it; choose another name, or move "
                "that file away first"
            )


def results_listed_in(report: Path) -> list[Path]:
    """Files a stackrig report says its run wrote (empty when it is not one of ours)."""
    try:
        data = files.read_json(report) if report.is_file() else None
    except Exception as exc:  # a damaged report: treat its files as not ours
        log.debug("%s: %s", report, exc)
        return []
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        return []
    names = [data.get(k) for k in ("output", "depth_map", "depth_colour")]
    earlier = data.get("earlier_outputs")
    names += earlier if isinstance(earlier, list) else []
    return [report.with_name(n) for n in names if isinstance(n, str) and n and "/" not in n]


def earlier_results(folders: Iterable[Path]) -> dict[Path, Path]:
    """Files earlier stackrig runs wrote in these folders (their reports included), each with
    the report that names it."""
    found: dict[Path, Path] = {}
    for folder in {f.resolve() for f in folders if f.is_dir()}:
        for report in folder.glob("*" + REPORT_SUFFIX):
            listed = results_listed_in(report)
            for result in [*listed, report] if listed else []:
                found[result] = report
    return found


def _key(path: Path) -> tuple[int, int] | str:
    """Identity of a file: (device, inode) when it exists (links, ../ and case folding agree)."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return str(Path(os.path.abspath(path)))
