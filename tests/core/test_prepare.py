"""A controller with prepare() is called once per cycle, prepare_lead_ms before the trigger, and
the trigger stays on the grid; lead 0 turns it off; a slow prepare delays nothing it must not."""

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


def test_prepare_runs_lead_before_each_trigger(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl, parts = _with_preparing(make_loop, cost_ns=300_000, prepare_lead_ms=2.0)
    res = loop.run()
    assert res.cycles == 10
    fired = parts["trigger"].fired
    assert len(ctrl.prepared_at) == len(fired)
    for at, (_, t) in zip(ctrl.prepared_at, fired, strict=True):
        assert t - at == 2 * MS, "prepare runs exactly the lead before its cycle's trigger"
    assert (loop.log.series("lateness") == 0).all(), "a prepare inside the lead delays nothing"


def test_prepare_that_would_start_late_is_skipped(make_loop) -> None:  # type: ignore[no-untyped-def]
    # decide takes 9.5 ms of a 10 ms period: no room for a 2 ms lead, so no prepare, no delay
    loop, ctrl, parts = _with_preparing(make_loop, prepare_lead_ms=2.0)
    ctrl.behaviour = lambda k, clock: clock.advance(9_500_000)
    res = loop.run()
    assert len(ctrl.prepared_at) == 1, "only the first cycle had room for its lead"
    assert len(parts["trigger"].fired) > 5
    assert res.missed == 0


def test_lead_zero_never_prepares(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl, _ = _with_preparing(make_loop, prepare_lead_ms=0.0)
    loop.run()
    assert ctrl.prepared_at == []
