"""The loop's warm-up helper (raas/core/background_warmup.py): while the realtime loop waits for
the devices, a controller's warm_background() runs on another thread, on the loop's CPUs at
SCHED_IDLE; it stops when the wait ends and with the loop; a controller with nothing to warm
does not wake it; lockstep and `warm_during_collect = false` start no helper; a failing
warm-up is counted, never fatal. With `warm_during_lead` (default on) it also runs from the
controller's prepare() until the trigger."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from fakes import ScriptedController

from raas.core.background_warmup import MAX_CONSECUTIVE_ERRORS, BackgroundWarmup
from raas.core.clock import FakeClock


def _wait(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


class Calls:
    def __init__(self, fail: bool = False) -> None:
        self.threads: set[int] = set()
        self.policies: set[int] = set()
        self.cpus: list[set[int]] = []
        self.n = 0
        self.fail = fail

    def __call__(self) -> None:
        self.n += 1
        self.threads.add(threading.get_ident())
        self.policies.add(os.sched_getscheduler(0))
        self.cpus.append(os.sched_getaffinity(0))
        time.sleep(0.0005)
        if self.fail:
            raise RuntimeError("broken hook")


def test_runs_between_begin_and_end_on_another_idle_thread() -> None:
    calls = Calls()
    bg = BackgroundWarmup()
    try:
        bg.begin(calls)
        assert _wait(lambda: calls.n >= 5)
        bg.end()
        time.sleep(0.05)  # the one in flight ends
        n = calls.n
        time.sleep(0.1)
        assert calls.n == n, "warm-ups went on after end()"
        assert calls.threads and threading.get_ident() not in calls.threads
        assert calls.policies == {os.SCHED_IDLE}
        assert all(c == os.sched_getaffinity(0) for c in calls.cpus)
        bg.begin(calls)
        assert _wait(lambda: calls.n > n)
    finally:
        bg.close()
    assert not bg.alive and bg.runs == calls.n and bg.errors == 0


def test_a_failing_hook_is_counted_and_stops_the_helper_not_the_caller() -> None:
    calls = Calls(fail=True)
    bg = BackgroundWarmup()
    try:
        for _ in range(MAX_CONSECUTIVE_ERRORS + 5):
            bg.begin(calls)
            time.sleep(0.01)
        assert _wait(lambda: not bg.alive)
    finally:
        bg.close()
    # one failure per wait (the wait's warm-ups end with it), then the helper gives up
    assert bg.errors == calls.n == MAX_CONSECUTIVE_ERRORS and bg.stopped_by_errors
    assert bg.last_error == "RuntimeError: broken hook"


class WarmingController(ScriptedController):
    """Has something to warm in the cycles of `warm_cycles` (None: every cycle)."""

    def __init__(
        self, clock: FakeClock, needs: frozenset[str], warm_cycles: set[int] | None = None
    ) -> None:
        super().__init__(clock, needs=needs)
        self.calls = Calls()
        self.waiting = False  # set by the test's slowed collect
        self.during_wait: list[bool] = []
        self.asked: list[int] = []
        self.warm_cycles = warm_cycles

    def background_warmup(self) -> Callable[[], None] | None:
        self.asked.append(threading.get_ident())
        cycle = len(self.asked) - 1
        if self.warm_cycles is not None and cycle not in self.warm_cycles:
            return None
        return self.warm

    def warm(self) -> None:
        self.during_wait.append(self.waiting)
        self.calls()


def _loop_with(make_loop, warm_cycles: set[int] | None = None, **cfg: object):  # type: ignore[no-untyped-def]
    loop, parts = make_loop(duration_s=0.1, **cfg)
    ctrl = WarmingController(parts["clock"], loop.controller.needs, warm_cycles)
    loop.controller = ctrl
    collect = loop.collect_first.collect

    def slow_collect(*args: object) -> None:  # the devices take 20 ms (real time) to answer
        ctrl.waiting = True
        time.sleep(0.02)
        ctrl.waiting = False
        collect(*args)  # type: ignore[arg-type]

    loop.collect_first.collect = slow_collect  # type: ignore[method-assign]
    return loop, ctrl


def test_the_loop_warms_up_while_it_waits_and_stops_with_the_run(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl = _loop_with(make_loop)
    res = loop.run()
    assert res.cycles == 10
    bg = loop.background
    assert bg is not None and not bg.alive  # closed with the run
    n = ctrl.calls.n
    assert n >= res.cycles  # at least one per 20 ms wait
    # all but at most one per cycle (the one started just as the wait ended) fell in a wait
    assert ctrl.during_wait.count(False) <= res.cycles
    assert threading.get_ident() not in ctrl.calls.threads
    assert set(ctrl.asked) == {threading.get_ident()}  # asked on the loop's thread, each cycle
    assert len(ctrl.asked) == res.cycles
    time.sleep(0.05)
    assert ctrl.calls.n == n


def test_nothing_to_warm_does_not_wake_the_helper(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl = _loop_with(make_loop, warm_cycles=set())
    loop.run()
    assert len(ctrl.asked) == 10 and ctrl.calls.n == 0
    assert loop.background is not None and not loop.background.alive  # never started
    loop, ctrl = _loop_with(make_loop, warm_cycles={3})
    loop.run()
    assert ctrl.calls.n >= 1 and ctrl.during_wait.count(False) <= 1


def test_off_and_lockstep_start_no_helper(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl = _loop_with(make_loop, warm_during_collect=False)
    loop.run()
    assert loop.background is None and ctrl.calls.n == 0
    loop, ctrl = _loop_with(make_loop)
    loop.clock.realtime = False  # type: ignore[misc]  # a lockstep clock, as far as the loop asks
    loop.run()
    assert loop.background is None and ctrl.calls.n == 0


class LeadWarmingController(WarmingController):
    """Has a prepare() (the loop's warm-up before the trigger) and notes where each background
    warm-up started: in the lead (after prepare(), before the trigger) or elsewhere."""

    def __init__(self, clock: FakeClock, needs: frozenset[str]) -> None:
        super().__init__(clock, needs)
        self.phase = "idle"
        self.prepared = 0
        self.started_in: list[str] = []

    def prepare(self) -> None:
        self.prepared += 1
        self.phase = "lead"

    def warm(self) -> None:
        self.started_in.append(self.phase)
        super().warm()


def _lead_loop(make_loop, **cfg: object):  # type: ignore[no-untyped-def]
    loop, parts = make_loop(duration_s=0.1, **cfg)
    ctrl = LeadWarmingController(parts["clock"], loop.controller.needs)
    loop.controller = ctrl
    clock = loop.clock
    sleep_until = clock.sleep_until

    def slow_lead(deadline: int) -> None:  # the lead takes 20 ms (real time)
        if ctrl.phase == "lead":
            time.sleep(0.02)
            ctrl.phase = "trigger"
        sleep_until(deadline)

    clock.sleep_until = slow_lead  # type: ignore[method-assign]
    return loop, ctrl


def test_the_helper_fills_the_lead_until_the_trigger(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl = _lead_loop(make_loop)
    res = loop.run()
    assert ctrl.prepared >= res.cycles
    # asked twice a cycle on the loop's thread: for the lead and for the devices' wait
    assert len(ctrl.asked) == 2 * ctrl.prepared and set(ctrl.asked) == {threading.get_ident()}
    assert ctrl.started_in.count("lead") >= res.cycles  # at least one per 20 ms lead
    time.sleep(0.05)
    n = ctrl.calls.n
    time.sleep(0.05)
    assert ctrl.calls.n == n and loop.background is not None and not loop.background.alive


def test_warm_during_lead_off_leaves_the_lead_alone(make_loop) -> None:  # type: ignore[no-untyped-def]
    loop, ctrl = _lead_loop(make_loop, warm_during_lead=False)
    loop.run()
    assert ctrl.prepared >= 10 and len(ctrl.asked) == ctrl.prepared  # the wait's only
    assert "lead" not in ctrl.started_in
