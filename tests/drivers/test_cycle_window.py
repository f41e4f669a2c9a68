"""CycleWindow: which cycle a self-clocked device's sample belongs to."""

from __future__ import annotations

import pytest
from raas_drivers.cycle_window import CycleWindow

P = 80_000_000


def test_a_sample_goes_to_the_latest_cycle_begun_before_it() -> None:
    w = CycleWindow(P)
    for k in range(5):
        w.mark(k, 1_000_000_000 + k * P)
    assert w.cycle_of(1_000_000_000 + 4 * P + 10_000_000) == 4
    assert w.cycle_of(1_000_000_000 + 2 * P + 10_000_000) == 2
    # up to half a period before a cycle's mark still counts for it (first poll after trigger)
    assert w.cycle_of(1_000_000_000 + 3 * P - P // 2) == 3
    assert w.cycle_of(1_000_000_000 + 3 * P - P // 2 - 1) == 2
    assert w.cycle_of(0) is None
    assert w.newest == 4


def test_first_mark_of_a_cycle_wins_and_old_cycles_are_ignored() -> None:
    w = CycleWindow(P, slack_ns=0)
    w.mark(7, 100)
    w.mark(7, 500)  # a later poll of the same cycle
    w.mark(6, 50)  # a cycle before the newest
    assert w.cycle_of(100) == 7 and w.cycle_of(99) is None


def test_ring_forgets_old_cycles() -> None:
    w = CycleWindow(P, depth=4)
    for k in range(10):
        w.mark(k, k * P)
    assert w.cycle_of(6 * P + 1) == 6
    assert w.cycle_of(2 * P) is None  # older than the ring


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_ns"):
        CycleWindow(0)
