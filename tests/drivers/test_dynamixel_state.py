"""The cycle: request_state/poll without blocking, states in SI units, apply clamps and returns
what the servos take."""

from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.calibration import Calibration
from raas_drivers.dynamixel.driver import DynamixelHandDriver
from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.errors import TargetShapeError

from tests.drivers.dxl_support import emu, hand, leap, make_hand, read_state

__all__ = ["emu", "hand", "leap"]

UNIT = 2 * math.pi / 4096


def test_state_of_the_cycle_asked_for(hand: DynamixelHandDriver, emu: DynamixelEmulator) -> None:
    emu.command("temp 7 41")
    st = read_state(hand, 0)  # cycle 0 also reads the temperatures
    assert st is not None
    assert st.cycle == 0
    assert st.positions.shape == st.velocities.shape == (16,)
    assert st.efforts.shape == st.temperatures.shape == (16,)
    np.testing.assert_allclose(st.positions, 0.0, atol=UNIT)  # raw 2048 is 0 rad
    assert st.temperatures[7] == 41
    assert st.temperatures[0] == 30
    assert st.applied_seq == -1
    assert hand.poll(0) is st  # asked again: the same state
    assert hand.poll(1) is None  # nobody asked for cycle 1
    st1 = read_state(hand, 1)
    assert st1 is not None and st1.cycle == 1
    assert hand.stats()["max_temperature_c"] == 41


def test_apply_moves_the_servos_and_states_follow(hand: DynamixelHandDriver) -> None:
    target = np.linspace(0.0, 0.6, 16)
    applied = hand.apply(target, 0)
    np.testing.assert_allclose(applied, target, atol=UNIT / 2)
    st = None
    for k in range(1, 300):
        st = read_state(hand, k)
        assert st is not None
        assert st.applied_seq == k - 1
        hand.apply(target, k)
        if np.allclose(st.positions, applied, atol=2 * UNIT):
            break
        time.sleep(0.005)
    assert st is not None
    np.testing.assert_allclose(st.positions, applied, atol=2 * UNIT)
    # velocity in rad/s, current in A, both signed (index_mcp_side sits still at 0 rad)
    assert abs(st.velocities[0]) < 0.5
    assert np.all(np.abs(st.efforts) <= 0.55 + 1e-9)


def test_apply_clamps_to_the_limits_and_quantises(
    hand: DynamixelHandDriver, emu: DynamixelEmulator
) -> None:
    target = np.full(16, 10.0)
    target[0] = -10.0
    target[1] = 0.12345
    applied = hand.apply(target, 0)
    assert applied[0] == pytest.approx(-1.047, abs=UNIT)
    assert applied[2] == pytest.approx(1.885, abs=UNIT)
    assert applied[1] == pytest.approx(0.12345, abs=UNIT / 2)
    assert round(applied[1] / UNIT) == applied[1] / UNIT  # exactly on the servo's grid
    assert read_state(hand, 0) is not None  # round trip: the emulator took the goals
    goal = struct.unpack_from("<i", emu.servos[2].table, ct.GOAL_POSITION)[0]
    assert goal == round(2048 + 1.885 / UNIT)


@pytest.mark.parametrize(
    ("bad", "words"),
    [(np.zeros(20), r"shape \(16,\)"), (np.r_[np.zeros(15), np.nan], "thumb_ip")],
)
def test_bad_targets_send_nothing(
    hand: DynamixelHandDriver, emu: DynamixelEmulator, bad: np.ndarray, words: str
) -> None:
    writes = hand.stats()["writes"]
    with pytest.raises(TargetShapeError, match=words):
        hand.apply(bad, 0)
    assert hand.stats()["writes"] == writes


def test_request_state_does_not_wait_for_the_answer(leap: Calibration) -> None:
    """At 57600 baud a 16-servo read takes >= 75 ms on the (paced) bus; request_state returns
    long before, and poll says "not yet" instead of waiting."""
    with DynamixelEmulator(range(16), baudrate=57600, pace=True) as emu:
        h = make_hand(emu, leap, baudrate=57600, read_timeout_ms=1000)
        h.configure()
        h.activate()
        try:
            t0 = time.monotonic()
            h.request_state(1)  # not a temperature cycle: 16 x 27 bytes answer
            first = h.poll(1)
            took = time.monotonic() - t0
            assert first is None
            assert took < 0.050  # a wide margin: the answer alone needs 75 ms on the bus
            st = None
            while st is None and time.monotonic() - t0 < 5:
                time.sleep(0.005)
                st = h.poll(1)
            assert st is not None
            assert time.monotonic() - t0 >= 0.070
        finally:
            h.shutdown()


def test_apply_lets_a_late_read_end_before_writing(leap: Calibration) -> None:
    """The loop may stop waiting for the state (its deadline); apply must not write into the
    servos' answers on the half-duplex bus, so it lets the read end first."""
    with DynamixelEmulator(range(16), baudrate=57600, pace=True) as emu:
        h = make_hand(emu, leap, baudrate=57600, read_timeout_ms=1000)
        h.configure()
        h.activate()
        try:
            h.request_state(1)
            h.apply(np.zeros(16), 1)
            s = h.stats()
            assert s["apply_waited"] == 1
            assert s["read_failures"] == 0 and s["crc_errors"] == 0
            assert h.poll(1) is not None  # the read ended whole; its state is there
        finally:
            h.shutdown()
