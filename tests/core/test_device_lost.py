"""A lost device stops the loop in FAULT with the hold target sent and the device named."""

from __future__ import annotations

import numpy as np
import pytest

from raas.core.clock import FakeClock
from raas.errors import DeviceLost


def test_hand_lost_mid_run(make_loop) -> None:
    holder: dict[str, object] = {}

    def die_at_5(cycle: int, clock: FakeClock) -> None:
        if cycle == 5:
            holder["hand"].dead = True  # type: ignore[attr-defined]

    loop, dev = make_loop(duration_s=0.2, behaviour=die_at_5)
    holder["hand"] = dev["hand"]
    with pytest.raises(DeviceLost) as info:
        loop.run()
    assert info.value.device == "hand"
    assert loop.result.lost_device == "hand"
    last_cycle, _, last = dev["hand"].applied[-1]
    assert last_cycle == -1  # the hold target, sent after the loss
    sup = loop.supervisor
    assert sup.state.label == "fault" and sup.reason.value == "device_lost" and sup.detail == "hand"
    # where the hand was last measured (clipped into the soft range), not some other pose
    np.testing.assert_array_equal(last, sup.hold_target)
    np.testing.assert_array_equal(
        sup.hold_target, sup.measured.clip(sup.conditioner.lower, sup.conditioner.upper)
    )
