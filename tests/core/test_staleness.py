"""Per-source deadlines: a source that misses its deadline is stale for the cycle, with its age,
and the loop does not wait past the deadline for it."""

from __future__ import annotations

MS = 1_000_000


def test_dropped_mocap_frames_are_stale_and_counted(make_loop) -> None:
    dropped = {4, 5, 6, 20}
    loop, dev = make_loop(
        rate_hz=100.0, duration_s=0.3, mocap_drop=lambda k: k in dropped, mocap_deadline_ns=2 * MS
    )
    res = loop.run()
    assert res.stale["mocap"] == len(dropped)
    assert res.stale["hand"] == 0
    seen = dev["ctrl"].stale_seen
    assert [i for i, s in enumerate(seen) if s["mocap"]] == sorted(dropped)
    # Age of the frozen frame after three lost frames: 3 periods.
    assert res.max_age_us["mocap"] == 3 * 10_000
    # The collect phase waited no longer than the mocap deadline.
    assert loop.log.series("phase_collect").max() <= 2 * MS


def test_fresh_sources_have_zero_age(make_loop) -> None:
    loop, _ = make_loop(duration_s=0.1)
    loop.run()
    for reading in loop.obs.sources.values():
        assert not reading.stale
        assert reading.age_ns == 0
