"""A lost device stops the loop with the idle action sent and the device named."""

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
    assert last_cycle == -1  # the idle action, sent after the loss
    np.testing.assert_array_equal(last, dev["hand"].idle_action)
