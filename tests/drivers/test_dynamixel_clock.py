"""The bus clock: the first servo's Realtime Tick, unwrapped and fitted to CLOCK_MONOTONIC."""

from __future__ import annotations

import time

from raas_drivers.dynamixel.driver import DynamixelHandDriver
from raas_drivers.dynamixel.emulator import DynamixelEmulator

from tests.drivers.dxl_support import emu, hand, leap, read_state

__all__ = ["emu", "hand", "leap"]


def test_states_carry_the_fitted_bus_clock(
    hand: DynamixelHandDriver, emu: DynamixelEmulator
) -> None:
    # The emulated servo 0 counts ms since its own power-up, start_ns on the host clock:
    # host = device + start_ns is the truth the fit must find.
    truth = emu.servos[0].start_ns
    for k in range(40):
        t0 = time.monotonic_ns()
        st = read_state(hand, k)
        t1 = time.monotonic_ns()
        assert st is not None
        # the capture instant lies inside the exchange (a wide margin for a busy machine)
        assert t0 - 2_000_000 <= st.capture_ns <= t1 + 2_000_000
        assert st.device_ns == hand.device_ns  # the bus clock's own stamp rides along
        time.sleep(0.002)
    s = hand.stats()
    assert s["clock_samples"] == 40
    assert abs(s["clock_offset_ns"] - truth) < 3_000_000  # ms ticks, shared CPU: 3 ms
    assert hand.clock.ready
    assert hand.device_ns > 0
    assert abs(hand.device_host_ns - (hand.device_ns + truth)) < 3_000_000
