"""The board file: self-describing layout, clear errors for a missing or foreign file."""

from __future__ import annotations

from pathlib import Path

import pytest

from raas.metrics.board import Board, BoardLayout, thumbnail_geometry
from raas.metrics.errors import BoardFormatError, BoardNotFound


def test_layout_travels_in_the_header(tmp_path: Path) -> None:
    layout = BoardLayout(
        rate_hz=500.0,
        sources=("hand", "cameras.top"),
        cameras=("top",),
        thumb_shape=(48, 64),
        thumb_stride=10,
        labels={"robot": "shadow-1"},
    )
    writer = Board.create(tmp_path / "b", layout)
    reader = Board.open(tmp_path / "b")
    assert reader.layout == layout
    assert not reader.writable
    assert reader.snapshot().state == "IDLE"
    assert reader.snapshot().thumbnail("top") is None  # none written yet
    reader.close()
    writer.close()


def test_missing_and_foreign_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(BoardNotFound, match="no metrics board"):
        Board.open(tmp_path / "nothing")
    (tmp_path / "foreign").write_bytes(b"x" * 9000)
    with pytest.raises(BoardFormatError, match="not a metrics board"):
        Board.open(tmp_path / "foreign")
    (tmp_path / "short").write_bytes(b"x")
    with pytest.raises(BoardFormatError, match="too small"):
        Board.open(tmp_path / "short")


@pytest.mark.parametrize(
    ("w", "h", "max_px", "shape", "stride"),
    [(200, 200, 96, (67, 67), 3), (640, 480, 96, (69, 92), 7), (64, 48, 96, (48, 64), 1)],
)
def test_thumbnail_geometry(
    w: int, h: int, max_px: int, shape: tuple[int, int], stride: int
) -> None:
    assert thumbnail_geometry(w, h, max_px) == (shape, stride)
