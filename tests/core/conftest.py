from __future__ import annotations

from collections.abc import Callable

import pytest
from fakes import FakeHand, FakeMocap, FakeTrigger, ScriptedController

from raas.core.clock import FakeClock
from raas.core.loop import ControlLoop, LoopConfig, SourceSpec

MS = 1_000_000


@pytest.fixture
def make_loop() -> Callable[..., tuple[ControlLoop, dict[str, object]]]:
    """Build a loop on a FakeClock with fake hand, trigger and mocap."""

    def build(
        rate_hz: float = 100.0,
        duration_s: float = 0.5,
        behaviour: Callable[..., object] | None = None,
        mocap_drop: Callable[[int], bool] = lambda k: False,
        mocap_deadline_ns: int = 2 * MS,
        **cfg: object,
    ) -> tuple[ControlLoop, dict[str, object]]:
        clock = FakeClock()
        hand = FakeHand(clock)
        trig = FakeTrigger(clock)
        mocap = FakeMocap(clock, trig, drop=mocap_drop)
        ctrl = ScriptedController(clock, behaviour, needs=frozenset({"hand", "mocap"}))
        cfg.setdefault("warmup_cycles", 0)
        config = LoopConfig(rate_hz=rate_hz, duration_s=duration_s, **cfg)
        loop = ControlLoop(
            config,
            clock,
            hand,
            trig,
            [SourceSpec(hand, 1 * MS), SourceSpec(mocap, mocap_deadline_ns)],
            ctrl,
        )
        return loop, {"clock": clock, "hand": hand, "trigger": trig, "mocap": mocap, "ctrl": ctrl}

    return build
