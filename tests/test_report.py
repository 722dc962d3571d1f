"""FrameReport <-> JSON: a round trip is exact, and a damaged report is a clear error."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from helpers import focus_stack, textured_scene

from stacking.engine import StackEngine
from stacking.errors import StackingError
from stacking.report import FrameReport, frame_reports
from stacking.settings import StackSettings


@pytest.fixture(scope="module")
def reports() -> list[FrameReport]:
    engine = StackEngine(StackSettings())
    stack, _ = focus_stack(textured_scene(), frames=4)
    for i, frame in enumerate(stack):
        engine.add(frame, f"frame_{i}.png")
    engine.add(np.zeros_like(stack[0]), "blank.png")  # rejected: carries a reason
    return engine.reports


def test_round_trip_through_json_is_exact(reports: list[FrameReport]) -> None:
    document = json.loads(json.dumps({"frames": [r.to_dict() for r in reports]}))
    again = frame_reports(document, "r.stack.json")
    assert again == reports
    assert again[-1].accepted is False and again[-1].reason


def entry(reports: list[FrameReport], **changes: Any) -> dict[str, Any]:
    data = reports[1].to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transform": "x"}, "transform = 'x': must be 3 rows of 3 numbers"),
        ({"transform": None}, "transform = None: must be 3 rows of 3 numbers"),
        ({"transform": [[1, 0], [0, 1]]}, "3 rows of 3 numbers"),
        ({"transform": [[1, 0, 0], [0, 1, 0], [0, 0, math.nan]]}, "finite"),
        ({"transform": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]}, "invertible"),
        ({"gain": ["a", 1, 1]}, "gain = ['a', 1, 1]: must be a list of 3 finite numbers > 0"),
        ({"gain": [1, 1]}, "gain"),
        ({"offset": None}, "offset = None"),
        ({"accepted": "yes"}, "accepted = 'yes': must be true or false"),
        ({"index": -1}, "index = -1: must be a whole number"),
        ({"name": 7}, "name = 7: must be text"),
        ({"confidence": math.inf}, "confidence = inf: must be a finite number"),
        ({"extra": 1}, "unknown key extra"),
    ],
)
def test_a_damaged_entry_names_the_frame_and_key(
    reports: list[FrameReport], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(StackingError, match=r"r\.stack\.json: frame") as exc:
        frame_reports({"frames": [entry(reports, **changes)]}, "r.stack.json")
    assert message in str(exc.value)


@pytest.mark.parametrize("document", [None, [], {"frames": "x"}, {"frames": [3]}])
def test_not_a_report(document: object) -> None:
    with pytest.raises(StackingError, match=r"r\.stack\.json"):
        frame_reports(document, "r.stack.json")


def test_a_missing_key_is_named(reports: list[FrameReport]) -> None:
    data = entry(reports)
    del data["gain"]
    with pytest.raises(StackingError, match="missing gain"):
        frame_reports({"frames": [data]}, "r.stack.json")
