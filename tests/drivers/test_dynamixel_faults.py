"""Bus faults map to the hand driver's errors: a silent servo, a hardware error, corrupt packets,
a port that goes away."""

from __future__ import annotations

import numpy as np
import pytest
from raas_drivers.dynamixel import control_table as ct
from raas_drivers.dynamixel.calibration import Calibration
from raas_drivers.dynamixel.driver import DynamixelHandDriver
from raas_drivers.dynamixel.emulator import DynamixelEmulator
from raas_drivers.dynamixel.errors import ServoHardwareError, ServoSilentError
from raas_drivers.errors import DeviceLostError

from tests.drivers.dxl_support import emu, hand, leap, make_hand, read_state

__all__ = ["emu", "hand", "leap"]


def test_a_silent_servo_is_lost_after_n_failed_reads_and_named(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    h = make_hand(emu, leap, read_timeout_ms=30, max_consecutive_failures=3)
    h.configure()
    h.activate()
    try:
        assert read_state(h, 0) is not None
        emu.command("silent 5")
        assert read_state(h, 1) is None  # stale, not yet lost
        assert read_state(h, 2) is None
        assert h.stats()["consecutive_failures"] == 2
        assert h.stats()["missing_id5"] == 2
        with pytest.raises(ServoSilentError) as err:
            read_state(h, 3)
        assert "servo 5 (middle_mcp_fwd) did not answer 3 sync reads in a row" in str(err.value)
        assert err.value.servo_ids == (5,)
        assert err.value.device == "hand"
        assert isinstance(err.value, DeviceLostError)
        s = h.stats()
        assert s["read_failures"] == 3 and s["timeouts"] == 3
        # once lost, every call says so; apply still tries the write (best effort)
        writes = s["writes"]
        with pytest.raises(ServoSilentError):
            h.apply(h.idle_action, -1)
        assert h.stats()["writes"] == writes + 1
        with pytest.raises(ServoSilentError):
            h.request_state(4)
    finally:
        h.shutdown()


def test_one_failed_read_then_recovery_resets_the_count(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    h = make_hand(emu, leap, read_timeout_ms=30, max_consecutive_failures=2)
    h.configure()
    h.activate()
    try:
        emu.command("silent 0")
        assert read_state(h, 1) is None
        emu.command("answer 0")
        assert read_state(h, 2) is not None
        assert h.stats()["consecutive_failures"] == 0
        emu.command("silent 0")
        assert read_state(h, 3) is None  # one failure again: not lost (2 needed in a row)
    finally:
        h.shutdown()


def test_corrupt_status_packets_are_counted_and_never_used(
    emu: DynamixelEmulator, leap: Calibration
) -> None:
    h = make_hand(emu, leap, read_timeout_ms=30)
    h.configure()
    h.activate()
    try:
        emu.command("corrupt 1")  # the first servo's status packet of the next read
        assert read_state(h, 1) is None
        s = h.stats()
        assert s["crc_errors"] == 1
        assert s["missing_id0"] == 1
        assert read_state(h, 2) is not None
    finally:
        h.shutdown()


def test_a_hardware_error_is_a_fault_naming_servo_and_cause(
    hand: DynamixelHandDriver, emu: DynamixelEmulator
) -> None:
    assert read_state(hand, 0) is not None
    emu.command(f"hwerror 13 {1 << 2}")  # overheating
    with pytest.raises(ServoHardwareError) as err:
        read_state(hand, 1)
    msg = str(err.value)
    assert "servo 13 (thumb_axl) reports a hardware error: overheating" in msg
    assert err.value.servo_id == 13 and err.value.bits == 4
    assert emu.servos[13].table[ct.TORQUE_ENABLE] == 0  # the servo's own shutdown


def test_a_vanished_port_is_a_lost_device(leap: Calibration) -> None:
    emu = DynamixelEmulator(range(16)).start()
    h = make_hand(emu, leap)
    h.configure()
    h.activate()
    try:
        h.request_state(0)
        emu.stop()  # the master side closes: like a U2D2 unplugged
        with pytest.raises(DeviceLostError):
            for k in range(1, 50):
                read_state(h, k)
                h.apply(np.zeros(16), k)
    finally:
        h.shutdown()
