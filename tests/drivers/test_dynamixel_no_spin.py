"""dynamixel-sdk's blocking calls spin on a non-blocking port (pyserial timeout=0) until their
timeout; in a SCHED_FIFO daemon pinned to a CPU that starves whoever should answer (the USB
stack's threads, an emulator). On the driver's port, the SDK's waits sleep on the descriptor."""

from __future__ import annotations

import time

from dynamixel_sdk import COMM_SUCCESS
from raas_drivers.dynamixel.bus import open_port
from raas_drivers.dynamixel.emulator import DynamixelEmulator

from tests.drivers.dxl_support import emu

__all__ = ["emu"]


def test_waiting_for_a_silent_servo_sleeps(emu: DynamixelEmulator) -> None:
    port, ph = open_port(emu.port, 1_000_000)
    try:
        emu.command("silent 3")
        wall0, cpu0 = time.monotonic(), time.process_time()
        for _ in range(3):
            _, result, _ = ph.ping(port, 3)  # waits the SDK's ~34 ms timeout each time
            assert result != COMM_SUCCESS
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        assert wall >= 0.09
        assert cpu < 0.5 * wall, f"{cpu * 1e3:.0f} ms CPU in {wall * 1e3:.0f} ms: spinning"
        assert ph.ping(port, 4)[1] == COMM_SUCCESS  # answers still come through at once
    finally:
        port.closePort()
