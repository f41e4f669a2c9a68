"""An overrun is counted as missed slots and never caught up by back-to-back cycles."""

from __future__ import annotations

from raas.core.clock import FakeClock

MS = 1_000_000


def test_overrun_counts_missed_slots_and_skips_them(make_loop) -> None:
    def slow_at_10(cycle: int, clock: FakeClock) -> None:
        if cycle == 10:
            clock.advance(25 * MS)  # T = 10 ms: runs into slots 11 and 12 (ends inside 12)

    loop, dev = make_loop(rate_hz=100.0, duration_s=0.3, behaviour=slow_at_10)
    res = loop.run()
    cycles = [k for k, _ in dev["trigger"].fired]
    assert 11 not in cycles and 12 not in cycles
    assert cycles[cycles.index(10) + 1] == 13
    assert res.overruns == 1
    assert res.missed == 2
    # Not caught up: cycle 13 starts on its own grid point, not right after cycle 10 ended.
    fired = dict(dev["trigger"].fired)
    assert fired[13] == fired[0] + 13 * 10 * MS
    assert res.cycles == 30  # duration counts cycles run; missed slots are extra


def test_no_miss_when_cycle_fits(make_loop) -> None:
    def almost(cycle: int, clock: FakeClock) -> None:
        clock.advance(8 * MS)

    res = make_loop(rate_hz=100.0, duration_s=0.2, behaviour=almost)[0].run()
    assert res.missed == 0
    assert res.overruns == 0
