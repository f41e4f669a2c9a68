"""In lockstep a device that never answers is a lost device, and the loop names it."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fakes import FakeClock, FakeHand, FakeTrigger, ScriptedController

from raas.core.clock import LockstepClock
from raas.core.loop import ControlLoop, LoopConfig, SourceSpec
from raas.errors import DeviceLost


class SilentHand(FakeHand):
    """Never answers; its fd never becomes readable."""

    def __init__(self) -> None:
        super().__init__(FakeClock())
        self._r, self._w = os.pipe()

    def poll(self, cycle: int):  # type: ignore[no-untyped-def]
        return None

    def fileno(self) -> int:
        return self._r


def test_silent_device_in_lockstep_is_named() -> None:
    hand = SilentHand()
    clock = LockstepClock(device_timeout_s=0.05)
    loop = ControlLoop(
        LoopConfig(rate_hz=12.5, duration_s=1.0, warmup_cycles=0),
        clock,
        hand,
        FakeTrigger(FakeClock()),
        [SourceSpec(hand, 2_000_000)],
        ScriptedController(FakeClock()),
    )
    with pytest.raises(DeviceLost) as info:
        loop.run()
    assert info.value.device == "hand"
    assert "no sample for cycle 0" in info.value.cause
    # The idle action went to the hand after the loss.
    cycle, _, targets = hand.applied[-1]
    assert cycle == -1
    np.testing.assert_array_equal(targets, hand.idle_action)
