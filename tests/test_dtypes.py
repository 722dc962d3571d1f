"""The dtype policy: one table of full-scale values, used by every conversion."""

from __future__ import annotations

import numpy as np
import pytest

from stacking import dtypes


@pytest.mark.parametrize(
    ("dtype", "top"),
    [(np.uint8, 255.0), (np.uint16, 65535.0), (np.float32, 1.0), (np.float64, 1.0)],
)
def test_full_scale_table(dtype: type, top: float) -> None:
    assert dtypes.full_scale(dtype) == top
    assert dtypes.full_scale(np.zeros(1, dtype).dtype) == top


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint32, np.bool_])
def test_other_sample_types_are_refused(dtype: type) -> None:
    with pytest.raises(TypeError, match="uint8, uint16 or float"):
        dtypes.full_scale(dtype)


def test_levels_span_zero_to_one() -> None:
    table = dtypes.levels(np.uint8)
    assert table.dtype == np.float32 and table.shape == (256,)
    assert table[0] == 0.0 and table[-1] == 1.0 and table[51] == pytest.approx(0.2)
    assert dtypes.levels(np.uint16).shape == (65536,)
    with pytest.raises(TypeError):
        dtypes.levels(np.float32)
