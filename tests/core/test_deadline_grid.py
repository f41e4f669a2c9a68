"""The cycle grid is absolute: t_k = t_0 + kT, whatever each cycle's phases cost."""

from __future__ import annotations

import random

import pytest

from raas.core.clock import FakeClock
from raas.core.grid import DeadlineGrid

MS = 1_000_000


def test_every_cycle_starts_exactly_on_the_grid(make_loop) -> None:
    rng = random.Random(1)

    def busy(cycle: int, clock: FakeClock) -> None:
        clock.advance(rng.randrange(0, 6 * MS))  # variable work, always inside T = 10 ms

    loop, dev = make_loop(rate_hz=100.0, duration_s=2.0, behaviour=busy)
    res = loop.run()
    fired = dev["trigger"].fired
    t0 = fired[0][1]
    assert res.cycles == 200
    assert res.missed == 0
    # No drift: trigger k happens at exactly t0 + k*T, not t_prev + T.
    assert [t for _, t in fired] == [t0 + k * 10 * MS for k in range(len(fired))]
    assert [k for k, _ in fired] == list(range(len(fired)))
    assert loop.log.series("lateness").max() == 0


def test_grid_index_and_times() -> None:
    g = DeadlineGrid.from_rate(5_000, 12.5)
    assert g.period_ns == 80 * MS
    assert g.t(0) == 5_000
    assert g.t(1000) == 5_000 + 80_000 * MS
    assert g.index_at(5_000 + 80 * MS - 1) == 0
    assert g.index_at(5_000 + 80 * MS) == 1
    with pytest.raises(ValueError):
        DeadlineGrid(0, 0)


def test_fixed_phase_apply_happens_at_t_k_plus_l(make_loop) -> None:
    loop, dev = make_loop(rate_hz=100.0, duration_s=0.2, apply_phase_ms=4.0)
    loop.run()
    fired = dict(dev["trigger"].fired)
    applied = dev["hand"].applied
    assert applied
    for cycle, t_apply, _ in applied:
        assert t_apply == fired[cycle] + 4 * MS
    assert loop.result.apply_late == 0
