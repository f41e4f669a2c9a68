"""Killing the process that holds the host end (SIGKILL, so nothing says goodbye) makes the
emulated hand firmware's watchdog hold the motors within W ms, measured from the emulator's own
event record. Targets are refused until an explicit reset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from raas_drivers import DeviceLostError
from raas_drivers.hand.serial_driver import SerialHandDriver

from tests.firmware_bridge.conftest import emulator, events, wait_for

pytestmark = [pytest.mark.system]

W_MS = 100.0
MARGIN_MS = 400.0  # wide: the emulator's servo tick may be descheduled on a loaded machine

HOST = """
import sys, time, numpy as np
from raas_drivers.hand.serial_driver import SerialHandDriver
hand = SerialHandDriver("hand", sys.argv[1])
hand.configure(); hand.activate()
k = 0
while True:
    hand.request_state(k)
    hand.apply(hand.idle_action + 0.2 * np.sin(0.05 * k), k)
    hand.poll(k)
    if k == 20:
        print("running", flush=True)
    k += 1
    time.sleep(0.01)
"""


def test_sigkilled_host_makes_the_watchdog_hold_within_w() -> None:
    with emulator("realtime", watchdog_ms=W_MS) as rig:
        port = str(rig.rig_info["hand_port"])
        host = subprocess.Popen(
            [sys.executable, "-c", HOST, port], stdout=subprocess.PIPE, text=True
        )
        try:
            assert host.stdout is not None
            assert host.stdout.readline().strip() == "running"
            killed_ns = time.monotonic_ns()
            os.kill(host.pid, signal.SIGKILL)
            host.wait(5)
        finally:
            if host.poll() is None:
                host.kill()
                host.wait()
        trip = wait_for(lambda: events(rig, "watchdog"), 5.0, "the watchdog to trip")[0]
        silent_ms = (trip["t_ns"] - trip["last_command_ns"]) / 1e6
        assert W_MS <= silent_ms <= W_MS + MARGIN_MS, silent_ms
        assert (trip["mono_ns"] - killed_ns) / 1e6 <= W_MS + MARGIN_MS
        applied = events(rig, "applied")
        assert applied and applied[-1]["t_ns"] <= trip["last_command_ns"]
        assert all(e["t_ns"] < trip["t_ns"] for e in applied)  # nothing applied after the hold
        # the held targets are where the motors were, not the last command
        assert not np.allclose(trip["held"], applied[-1]["targets"], atol=1e-6)

        # a new host sees the fault: commands are refused until it resets explicitly
        hand = SerialHandDriver("hand", port)
        hand.configure()  # configure's handshake is HELLO + RESET: the explicit reset
        hand.activate()
        hand.request_state(1)
        state = wait_for(lambda: hand.poll(1), 5.0, "a state after the reset")
        assert state.applied_seq == -1
        hand.shutdown()


def test_a_latched_watchdog_refuses_targets_until_reset() -> None:
    with emulator("realtime", watchdog_ms=W_MS) as rig:
        hand = SerialHandDriver("hand", str(rig.rig_info["hand_port"]))
        hand.configure()
        hand.activate()
        hand.apply(hand.idle_action, 0)  # arms the watchdog
        wait_for(lambda: events(rig, "watchdog"), 5.0, "the watchdog to trip")
        with pytest.raises(DeviceLostError, match="WATCHDOG"):
            wait_for(lambda: hand.poll(0) or None, 5.0, "the FAULT to arrive")
        with pytest.raises(DeviceLostError):
            hand.apply(hand.idle_action, 1)  # still refused: no automatic resume
        hand.reset()
        hand.apply(hand.idle_action, 2)
        hand.request_state(2)
        state = wait_for(lambda: hand.poll(2), 5.0, "a state after the reset")
        assert state.applied_seq == 2
        hand.shutdown()
