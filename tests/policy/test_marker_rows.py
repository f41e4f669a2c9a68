"""Policies and the eval's referee find their motion-capture rows by name in the cell's rows
(a cell file's [mocap.markers] order), and a missing row is refused naming mocap.markers."""

from __future__ import annotations

import numpy as np
import pytest

from raas.errors import ConfigError
from raas.policy.cell import CellSpec, marker_rows


def test_rows_follow_the_cell_files_order() -> None:
    cell = CellSpec()
    names = (*cell.block_markers, "palm", *reversed(cell.fingertip_markers))
    block = marker_rows(names, cell.block_markers, "referee")
    tips = marker_rows(names, cell.fingertip_markers, "policy")
    assert [names[i] for i in block] == list(cell.block_markers)
    assert [names[i] for i in tips] == list(cell.fingertip_markers)
    assert block.dtype == np.intp and list(block) == list(range(8))
    assert list(tips) == [13, 12, 11, 10, 9]


def test_a_missing_row_is_refused_naming_the_field_and_the_rows() -> None:
    cell = CellSpec()
    with pytest.raises(ConfigError) as err:
        marker_rows(cell.fingertip_markers, cell.block_markers, "raasd eval's referee")
    assert err.value.field == "mocap.markers"
    msg = str(err.value)
    assert "raasd eval's referee" in msg and "missing block:m0" in msg and "fftip" in msg
    with pytest.raises(ConfigError, match="the cell has no \\[mocap\\]"):
        marker_rows((), cell.block_markers, "referee")
