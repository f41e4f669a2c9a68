"""The host's e-stop on the serial link: `emergency_stop()` sends the firmware's ESTOP, the board
holds and refuses targets, and those answers do not fault the link; `clear_emergency_stop()`
releases the latch (RESET) and targets are taken again. A real fault during an e-stop still
faults the link. Against the firmware emulator, judged on its event record."""

from __future__ import annotations

import numpy as np
import pytest
from raas_drivers import DeviceLostError
from raas_drivers.hand.serial_driver import SerialHandDriver
from raas_firmware_bridge.link import LinkState

from tests.firmware_bridge.conftest import emulator, events, wait_for

pytestmark = [pytest.mark.system]


def _cycles(hand: SerialHandDriver, first: int, n: int) -> int:
    """Run n host cycles (state request, poll until the answer, targets); the next cycle."""
    for k in range(first, first + n):
        hand.request_state(k)
        wait_for(lambda k=k: hand.poll(k), 5.0, f"the state of cycle {k}")  # type: ignore[misc]
        hand.apply(hand.idle_action, k)
    return first + n


def test_estop_holds_the_board_and_clear_releases_it() -> None:
    with emulator("realtime") as rig:
        hand = SerialHandDriver("hand", str(rig.rig_info["hand_port"]))
        hand.configure()
        hand.activate()
        try:
            k = _cycles(hand, 0, 5)
            hand.emergency_stop()
            wait_for(lambda: events(rig, "estop"), 5.0, "the board's e-stop")
            k = _cycles(hand, k, 5)  # refused targets, flagged states: the link stays open
            assert hand.link.state is LinkState.OPEN
            assert hand.link.estop_latched
            applied = [e["seq"] for e in events(rig, "applied")]
            assert max(applied) < 5  # nothing taken after the ESTOP
            hand.clear_emergency_stop()
            k = _cycles(hand, k, 3)
            wait_for(lambda: not hand.link.estop_latched, 5.0, "the RESET_ACK")
            _cycles(hand, k, 3)
            assert max(e["seq"] for e in events(rig, "applied")) >= k
            assert hand.link.state is LinkState.OPEN
        finally:
            hand.shutdown()


def test_a_real_fault_during_an_estop_still_faults_the_link() -> None:
    with emulator("realtime", watchdog_ms=100.0) as rig:
        hand = SerialHandDriver("hand", str(rig.rig_info["hand_port"]))
        hand.configure()
        hand.activate()
        try:
            k = _cycles(hand, 0, 3)
            hand.emergency_stop()
            wait_for(lambda: events(rig, "watchdog"), 5.0, "the watchdog (no commands)")

            def lost() -> bool:
                try:
                    hand.request_state(k)
                    hand.poll(k)
                except DeviceLostError:
                    return True
                return False

            wait_for(lost, 5.0, "the link to fault on FAULT(WATCHDOG)")
            assert "WATCHDOG" in hand.link.reason
            assert np.isfinite(hand.idle_action).all()
        finally:
            hand.shutdown()
