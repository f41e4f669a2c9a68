"""A controller's prepare() (a policy's warm-up) runs once per cycle where LoopConfig.prepare
says: prepare_lead_ms before the trigger (default) or right after it; "off" never. The trigger
stays on the grid, and samples that arrive while the controller prepares are not lost."""

from __future__ import annotations

from fakes import ScriptedController

from raas.core.clock import FakeClock

MS = 1_000_000


class Preparing(ScriptedController):
    def __init__(self, clock: FakeClock, needs: frozenset[str], cost_ns: int = 0) -> None:
        super().__init__(clock, needs=needs)
        self.prepared_at: list[int] = []
        self.cost_ns = cost_ns

    def prepare(self) -> None:
        self.prepared_at.append(self.clock.now_ns())
        self.clock.advance(self.cost_ns)


def _with_preparing(make_loop, cost_ns: int = 0, **cfg: object):  # type: ignore[no-untyped-def]
    loop, parts = make_loop(duration_s=0.1, **cfg)
    clock = parts["clock"]
    ctrl = Preparing(clock, loop.controller.needs, cost_ns)
    loop.controller = ctrl
    return loop, ctrl, parts


def test_default_is_before_trigger(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl, parts = _with_preparing(make_loop)
    loop.run()
    lead = round(loop.config.prepare_lead_ms * MS)
    assert loop.config.prepare == "before_trigger"
    assert [
        t - at for at, (_, t) in zip(ctrl.prepared_at, parts["trigger"].fired, strict=True)
    ] == [lead] * len(parts["trigger"].fired)


def test_prepare_runs_lead_before_each_trigger(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl, parts = _with_preparing(
        make_loop, cost_ns=300_000, prepare="before_trigger", prepare_lead_ms=2.0
    )
    res = loop.run()
    assert res.cycles == 10
    fired = parts["trigger"].fired
    assert len(ctrl.prepared_at) == len(fired)
    for at, (_, t) in zip(ctrl.prepared_at, fired, strict=True):
        assert t - at == 2 * MS, "prepare runs exactly the lead before its cycle's trigger"
    assert (loop.log.series("lateness") == 0).all(), "a prepare inside the lead delays nothing"


def test_after_trigger_runs_between_trigger_and_decide(make_loop) -> None:  # type: ignore[no-untyped-def]
    # a prepare (3 ms) longer than the hand's and the mocap's deadlines (1 and 2 ms): what
    # arrived meanwhile is taken, nothing goes stale, nothing falls back
    loop, ctrl, parts = _with_preparing(make_loop, cost_ns=3 * MS, prepare="after_trigger")
    decided_at: list[int] = []
    ctrl.behaviour = lambda k, clock: decided_at.append(clock.now_ns())
    res = loop.run()
    fired = [t for _, t in parts["trigger"].fired]
    assert len(ctrl.prepared_at) == len(fired) == len(decided_at)
    for t, at, d in zip(fired, ctrl.prepared_at, decided_at, strict=True):
        assert t <= at < d
    assert res.stale == {"hand": 0, "mocap": 0}
    assert res.fallbacks_repeat == res.fallbacks_idle == 0
    assert (loop.log.series("lateness") == 0).all()


def test_prepare_that_would_start_late_is_skipped(make_loop) -> None:  # type: ignore[no-untyped-def]
    # decide takes 9.5 ms of a 10 ms period: no room for a 2 ms lead, so no prepare, no delay
    loop, ctrl, parts = _with_preparing(make_loop, prepare="before_trigger", prepare_lead_ms=2.0)
    ctrl.behaviour = lambda k, clock: clock.advance(9_500_000)
    res = loop.run()
    assert len(ctrl.prepared_at) == 1, "only the first cycle had room for its lead"
    assert len(parts["trigger"].fired) > 5
    assert res.missed == 0


def test_lead_zero_never_prepares(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl, _ = _with_preparing(make_loop, prepare="off")
    loop.run()
    assert ctrl.prepared_at == []
