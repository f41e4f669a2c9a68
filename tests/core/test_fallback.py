"""The declared fallback: repeat the last action up to N cycles, then idle; each one counted."""

from __future__ import annotations

import numpy as np

from raas.core.clock import FakeClock
from raas.core.fallback import Fallback, FallbackKind

MS = 1_000_000


def test_repeat_then_idle_then_recover() -> None:
    fb = Fallback(np.zeros(3), max_repeats=2)
    out = np.empty(3)
    fb.record_applied(np.array([1.0, 2.0, 3.0]), FallbackKind.NONE)
    kinds = []
    for _ in range(4):
        kinds.append(fb.choose(out))
        fb.record_applied(out, kinds[-1])
    assert kinds == [FallbackKind.REPEAT, FallbackKind.REPEAT, FallbackKind.IDLE, FallbackKind.IDLE]
    assert fb.repeats == 2 and fb.idles == 2 and fb.total == 4
    np.testing.assert_array_equal(out, np.zeros(3))
    fb.record_applied(np.ones(3), FallbackKind.NONE)  # a good action resets the run
    assert fb.choose(out) is FallbackKind.REPEAT


def test_nothing_applied_yet_goes_straight_to_idle() -> None:
    fb = Fallback(np.full(2, 0.5), max_repeats=3)
    out = np.empty(2)
    assert fb.choose(out) is FallbackKind.IDLE
    np.testing.assert_array_equal(out, [0.5, 0.5])


def test_loop_counts_missing_actions(make_loop) -> None:
    loop, dev = make_loop(
        duration_s=0.2, max_repeats=3, behaviour=lambda k, c: False if 5 <= k < 10 else None
    )
    res = loop.run()
    assert res.fallbacks_repeat == 3
    assert res.fallbacks_idle == 2
    applied = {k: a for k, _, a in dev["hand"].applied}
    np.testing.assert_array_equal(applied[5], applied[4])  # repeat of the last applied
    # then the repeats ran out: the supervisor holds where the hand was measured, and stays
    sup = loop.supervisor
    assert (sup.state.label, sup.reason.value) == ("hold", "inference_overrun")
    np.testing.assert_array_equal(applied[8], sup.hold_target)
    np.testing.assert_array_equal(applied[15], sup.hold_target)  # no automatic re-arm
    assert np.count_nonzero(loop.log.series("fallback")) == 5


def test_slow_decide_and_nan_take_the_fallback_and_never_reach_the_hand(make_loop) -> None:
    def bad(cycle: int, clock: FakeClock) -> object:
        if cycle == 3:
            clock.advance(6 * MS)  # budget is T/2 = 5 ms
        if cycle == 7:
            return "nan"
        return None

    loop, dev = make_loop(duration_s=0.2, behaviour=bad)
    res = loop.run()
    assert res.fallbacks_repeat == 1  # the slow decision
    assert res.interventions["nonfinite"] == 1  # the NaN action: rejected by conditioning
    applied = {k: a for k, _, a in dev["hand"].applied}
    assert applied[7][3] == applied[6][3]  # the NaN actuator kept its target
    for _, _, targets in dev["hand"].applied:
        assert np.isfinite(targets).all()


def test_a_planned_action_is_applied_however_long_decide_took(make_loop) -> None:
    """A policy server's chunk row is planned for its cycle: a decide stalled past the budget
    applies it (late), not the last action repeated (docs/architecture.md, the cycle)."""

    def slow(cycle: int, clock: FakeClock) -> object:
        if cycle == 3:
            clock.advance(6 * MS)  # budget is T/2 = 5 ms
        return None

    loop, dev = make_loop(duration_s=0.2, behaviour=slow)
    dev["ctrl"].planned = True  # type: ignore[attr-defined]
    res = loop.run()
    assert res.fallbacks_repeat == 0 and res.fallbacks_idle == 0
    applied = {k: a for k, _, a in dev["hand"].applied}
    assert applied[3][0] != applied[2][0]  # cycle 3's own target, not cycle 2's repeated


def test_a_lockstep_loop_does_not_judge_decide_by_the_wall_clock(make_loop) -> None:
    """On a LockstepClock simulated time stands still while decide runs: a decide slower than
    the budget in wall time (the machine stalled) is applied, so the run's actions do not
    depend on the machine (docs/architecture.md, Clocks); the controller sees obs.lockstep."""

    def slow(cycle: int, clock: FakeClock) -> object:
        if cycle == 3:
            clock.advance(6 * MS)  # budget is T/2 = 5 ms
        return None

    loop, dev = make_loop(duration_s=0.2, behaviour=slow)
    dev["clock"].realtime = False  # type: ignore[attr-defined]
    res = loop.run()
    assert res.fallbacks_repeat == 0 and res.fallbacks_idle == 0
    applied = {k: a for k, _, a in dev["hand"].applied}
    assert applied[3][0] != applied[2][0]  # cycle 3's own target
    assert loop.obs.lockstep  # what every controller's decide() reads


def test_late_from_the_first_cycle_holds_after_n_plus_one_not_at_once(make_loop) -> None:
    """Nothing applied yet: the first late cycle gets the idle action, but the watchdog holds
    only at the N+1-th late decision in a row (docs/safety.md), as later in a run. Before, the
    first idle action counted as the fallback run out: a late first decision held at once."""
    loop, _ = make_loop(duration_s=0.2, max_repeats=3, behaviour=lambda k, c: False)
    loop.run()
    sup = loop.supervisor
    assert (sup.state.label, sup.reason.value) == ("hold", "inference_overrun")
    assert sup.history[-1].cycle == 3  # cycles 0, 1, 2, 3: N + 1 = 4 late decisions
    kinds = list(loop.log.series("fallback")[:4])
    assert kinds == [FallbackKind.IDLE, FallbackKind.REPEAT, FallbackKind.REPEAT, FallbackKind.IDLE]
