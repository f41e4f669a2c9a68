"""A port unplugged mid-run ends in the fault state, and stays there, even once the port is back,
until an explicit reset."""

from __future__ import annotations

from pathlib import Path

import pytest
from raas_drivers import DeviceLostError
from raas_firmware_bridge.link import LinkState

from tests.drivers.conftest import Cell, bring_up, step
from tests.firmware_bridge.conftest import emulator, events, wait_for

pytestmark = [pytest.mark.system]

VANISH_AT = 5


def _unplug_and_wait(cell: Cell) -> None:
    hand = cell.devs.hand
    for _ in range(VANISH_AT):
        step(cell)
    k = cell.next_cycle()
    cell.devs.trigger.fire(k)  # the emulator pulls the hand's cable at this trigger
    with pytest.raises(DeviceLostError) as info:
        wait_for(lambda: hand.request_state(k) or hand.poll(k), 5.0, "the hand to vanish")
    assert info.value.device == "hand" and "vanished" in str(info.value)
    assert hand.link_state is LinkState.FAULTED


@pytest.mark.parametrize("clock", ["lockstep", "realtime"])
def test_unplugged_port_faults_and_refuses_to_resume_until_reset(clock: str) -> None:
    with emulator(clock, vanish_at_cycle=VANISH_AT, vanish_for_s=0.3) as rig:
        cell = bring_up(rig)
        hand = cell.devs.hand
        _unplug_and_wait(cell)
        port = Path(str(rig.rig_info["hand_port"]))
        wait_for(lambda: events(rig, "plugged"), 5.0, "the port to come back")
        assert port.exists()
        # the port is back, the link is not: every call keeps raising
        for call in (
            lambda: hand.poll(cell.cycle),
            lambda: hand.request_state(cell.cycle),
            lambda: hand.apply(hand.idle_action, cell.cycle),
        ):
            with pytest.raises(DeviceLostError):
                call()
        assert hand.link_state is LinkState.FAULTED
        hand.reset()  # explicit: reopen, HELLO, RESET
        assert hand.link_state is LinkState.OPEN
        got = step(cell)
        assert got["hand"].applied_seq == -1  # the board lost power with its cable
        hand.apply(hand.idle_action, cell.cycle - 1)
        assert step(cell)["hand"].applied_seq == cell.cycle - 2
        assert hand.stats()["link_open"] == 1.0
