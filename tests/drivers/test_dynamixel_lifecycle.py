"""The Dynamixel hand's lifecycle: what configure writes, and that nothing moves or drops."""

from __future__ import annotations

import numpy as np
import pytest
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.calibration import Calibration
from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.errors import DeviceNotReadyError, LifecycleTransitionError
from raas_drivers.lifecycle import LifecycleState

from tests.drivers.dxl_support import emu, leap, make_hand, read_state, settle

__all__ = ["emu", "leap"]


def _u(table: bytearray, address: int, size: int) -> int:
    return int.from_bytes(table[address : address + size], "little", signed=size == 4)


def test_configure_writes_the_calibration_into_the_servos(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    hand = make_hand(emu, leap)
    hand.configure()
    try:
        assert hand.state is LifecycleState.INACTIVE
        for sid, servo in zip(leap.ids, leap.servos, strict=True):
            t = emu.servos[sid].table
            assert t[ct.RETURN_DELAY_TIME] == 0  # factory 250 (500 us) -> 0
            assert t[ct.OPERATING_MODE] == 5  # current-based position
            assert _u(t, ct.CURRENT_LIMIT, 2) == 550
            assert _u(t, ct.GOAL_CURRENT, 2) == 550
            assert _u(t, ct.POSITION_P_GAIN, 2) == servo.position_p_gain
            assert _u(t, ct.POSITION_D_GAIN, 2) == servo.position_d_gain
            assert t[ct.TORQUE_ENABLE] == 0  # configure never switches torque on
        t0 = emu.servos[0].table
        assert _u(t0, ct.MIN_POSITION_LIMIT, 4) == round(2048 - 1.047 / ct.RAD_PER_POSITION_UNIT)
        assert _u(t0, ct.MAX_POSITION_LIMIT, 4) == round(2048 + 1.047 / ct.RAD_PER_POSITION_UNIT)
        assert hand.actuator_names == leap.joints == hand.joint_names
        assert hand.model == "leap-hand"
        assert hand.limits.shape == (16, 2)
        np.testing.assert_allclose(hand.effort_limits, 0.55)
        assert hand.actuator_joint_index == tuple(range(16))
    finally:
        hand.shutdown()


def test_activate_holds_where_the_hand_is_then_switches_torque_on(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    for n, s in enumerate(emu.servos.values()):
        s.pos = 2000.0 + 10 * n  # the hand rests somewhere; activation must not move it
    hand = make_hand(emu, leap)
    hand.configure()
    hand.activate()
    try:
        for n, s in enumerate(emu.servos.values()):
            assert s.table[ct.TORQUE_ENABLE] == 1
            assert _u(s.table, ct.GOAL_POSITION, 4) == 2000 + 10 * n
    finally:
        hand.shutdown()


def test_deactivate_and_shutdown_hold_with_torque_on_by_default(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    hand = make_hand(emu, leap)
    hand.configure()
    hand.activate()
    hand.apply(np.full(16, 0.3), 0)
    assert read_state(hand, 1) is not None
    before = emu.chain.packets
    hand.deactivate()  # one sync read of the positions, one sync write of the goals
    settle(emu, before, 2)
    for s in emu.servos.values():
        assert s.table[ct.TORQUE_ENABLE] == 1
        # the goal is where the servo was measured, not the 0.3 rad target
        assert abs(_u(s.table, ct.GOAL_POSITION, 4) - round(s.pos)) <= 30
    hand.shutdown()
    assert hand.state is LifecycleState.FINALIZED
    assert all(s.table[ct.TORQUE_ENABLE] == 1 for s in emu.servos.values())


def test_torque_off_on_shutdown_when_asked(emu: DynamixelEmulator, leap: Calibration) -> None:
    hand = make_hand(emu, leap, torque_off_on_shutdown=True)
    hand.configure()
    hand.activate()
    assert all(s.table[ct.TORQUE_ENABLE] == 1 for s in emu.servos.values())
    hand.shutdown()
    assert all(s.table[ct.TORQUE_ENABLE] == 0 for s in emu.servos.values())


def test_eeprom_changes_need_torque_off_and_get_it(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    emu.servos[3].table[ct.TORQUE_ENABLE] = 1  # left on by an earlier run, factory settings
    hand = make_hand(emu, leap)
    hand.configure()
    try:
        assert emu.servos[3].table[ct.OPERATING_MODE] == 5
    finally:
        hand.shutdown()


def test_calls_outside_active_are_refused(emu: DynamixelEmulator, leap: Calibration) -> None:
    hand = make_hand(emu, leap)
    with pytest.raises(LifecycleTransitionError):
        hand.apply(np.zeros(16), 0)
    hand.configure()
    try:
        with pytest.raises(LifecycleTransitionError):
            hand.request_state(0)
    finally:
        hand.shutdown()


def test_configure_names_the_servos_that_do_not_answer(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    emu.command("silent 9")
    emu.command("silent 14")
    hand = make_hand(emu, leap)
    with pytest.raises(DeviceNotReadyError) as err:
        hand.configure()
    msg = str(err.value)
    assert "servo 9 (ring_mcp_fwd)" in msg
    assert "servo 14 (thumb_mcp)" in msg
    assert "servo 8 " not in msg
    hand.shutdown()


def test_configure_refuses_a_servo_in_hardware_error(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    emu.command("hwerror 2 32")  # overload
    hand = make_hand(emu, leap)
    with pytest.raises(DeviceNotReadyError, match=r"servo 2 \(index_pip\): overload"):
        hand.configure()
    hand.shutdown()


def test_configure_refuses_an_unknown_servo_model(leap: Calibration) -> None:
    with DynamixelEmulator(range(16), model_number=4242) as emu:
        hand = make_hand(emu, leap)
        with pytest.raises(DeviceNotReadyError, match="model number 4242"):
            hand.configure()
        hand.shutdown()


def test_configure_on_a_missing_port(leap: Calibration) -> None:
    from raas_drivers.dynamixel.config import DynamixelHandSettings
    from raas_drivers.dynamixel.driver import DynamixelHandDriver

    s = DynamixelHandSettings(port="/dev/does-not-exist-dxl", calibration="x")
    hand = DynamixelHandDriver("hand", s, leap)
    with pytest.raises(DeviceNotReadyError) as err:
        hand.configure()
    # the port named once, what is wrong and what to do (as `raasd devices` says it)
    msg = str(err.value)
    assert msg.count("/dev/does-not-exist-dxl") == 1, msg
    assert "no such port (is the U2D2 plugged in? ls /dev/serial/by-id/)" in msg
