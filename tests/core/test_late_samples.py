"""A slow source is not a lost one: an answer that came after its cycle's deadline is taken as a
late sample (stale, about a period old) and does not count towards the stale-sensor hold; a
source that says nothing at all still holds the robot after K cycles (raas.core.collect)."""

from __future__ import annotations

from fakes import FakeHand, FakeMocap, FakeTrigger, ScriptedController
from raas_drivers.hand import HandState

from raas.core.clock import FakeClock
from raas.core.loop import ControlLoop, LoopConfig, SourceSpec

MS = 1_000_000


class SlowHand(FakeHand):
    """Answers every request `latency_ns` later (after the 1 ms deadline, before the next
    cycle), and, like the serial hand driver, keeps the newest answer it received."""

    silent_from: int | None = None

    def poll(self, cycle: int) -> HandState | None:
        newest = self.newest()
        return newest if newest is not None and newest.cycle == cycle else None

    def newest(self) -> HandState | None:
        now = self.clock.now_ns()
        answered = [
            k
            for k, t in self.requested.items()
            if now >= t + self.latency_ns and (self.silent_from is None or k < self.silent_from)
        ]
        if not answered:
            return None
        k = max(answered)
        return HandState(cycle=k, capture_ns=self.requested[k])


def _loop(hand: FakeHand, clock: FakeClock) -> ControlLoop:
    trig = FakeTrigger(clock)
    mocap = FakeMocap(clock, trig)
    ctrl = ScriptedController(clock, None, needs=frozenset({"hand", "mocap"}))
    cfg = LoopConfig(rate_hz=100.0, duration_s=0.3, warmup_cycles=0)
    return ControlLoop(
        cfg, clock, hand, trig, [SourceSpec(hand, 1 * MS), SourceSpec(mocap, 2 * MS)], ctrl
    )


def test_a_late_but_alive_hand_keeps_the_robot_running() -> None:
    clock = FakeClock()
    hand = SlowHand(clock, latency_ns=3 * MS)  # 3 ms: after the 1 ms deadline, every cycle
    loop = _loop(hand, clock)
    res = loop.run()
    assert res.safety_state == "running", (res.safety_state, res.safety_reason)
    assert res.stale["hand"] == res.cycles  # never this cycle's own sample ...
    assert res.late["hand"] >= res.cycles - 1  # ... but always the previous one
    reading = loop.obs.sources["hand"]
    assert reading.late and reading.sample is not None
    assert reading.age_ns == 10 * MS  # one period old, not ever older


def test_a_hand_without_late_answers_still_holds() -> None:
    clock = FakeClock()
    hand = FakeHand(clock, latency_ns=3 * MS)  # slow, and keeps nothing the loop can take
    res = _loop(hand, clock).run()
    assert (res.safety_state, res.safety_reason) == ("hold", "stale_sensor")


def test_a_silent_hand_holds_after_k_cycles() -> None:
    clock = FakeClock()
    hand = SlowHand(clock, latency_ns=3 * MS)
    hand.silent_from = 10  # no answer to cycle 10 or later
    loop = _loop(hand, clock)
    res = loop.run()
    assert (res.safety_state, res.safety_reason) == ("hold", "stale_sensor")
    hold = next(t for t in loop.supervisor.history if t.reason.value == "stale_sensor")
    # cycle 10's answer would have been taken late in cycle 11: silent from 11, K = 3
    assert hold.cycle == 13
