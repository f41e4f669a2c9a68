"""Every simulated source keeps its newest sample for the loop to take late (`newest()`): a
sample that came after its cycle's deadline is still the newest the device has, not lost."""

from __future__ import annotations

from typing import Any

from tests.drivers.conftest import Cell, collect


def test_newest_is_the_last_cycle_each_source_answered(realtime_cell: Cell) -> None:
    cell = realtime_cell
    sources: list[Any] = [cell.devs.hand, cell.devs.mocap, *cell.devs.cameras.sources()]  # type: ignore[union-attr]
    for _ in range(2):
        k = cell.next_cycle()
        cell.devs.trigger.fire(k)
        cell.devs.hand.request_state(k)
        got = collect(cell.sources, k)
    # the loop asks for the next cycle; nothing answers it yet, the newest is still cycle k
    for s in sources:
        assert s.poll(k + 1) is None
        newest = s.newest()
        assert newest is not None and newest.cycle == k, s.source_name
        assert newest.capture_ns == got[s.source_name].capture_ns
