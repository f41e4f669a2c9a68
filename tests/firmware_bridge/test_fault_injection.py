"""Fault injection on the link: at a bit-error rate (plus dropped, inserted and truncated bytes,
both directions) a corrupted target is never applied; every target the emulated firmware applied
is exactly one the host sent, for the cycle it was sent with. A firmware reset mid-run is a
fault the host sees and must reset explicitly."""

from __future__ import annotations

import select
import time

import numpy as np
import pytest
from raas_drivers import DeviceLostError
from raas_drivers.sim import RigConfig, SimRig
from raas_firmware_bridge.emulator.config import LinkConfig
from raas_firmware_bridge.emulator.record import read_events
from raas_firmware_bridge.messages import quantise_targets

from tests.drivers.conftest import bring_up, step
from tests.firmware_bridge.conftest import emulator, events, wait_for

pytestmark = [pytest.mark.system]

CYCLES = 300


def test_corrupted_targets_are_never_applied() -> None:
    link = LinkConfig(
        record_events=True,
        bit_error_rate=1e-3,
        drop_byte_rate=1e-3,
        insert_byte_rate=1e-3,
        truncate_rate=0.02,
        corrupt_rx=True,
        faults_from_cycle=1,  # a clean handshake, then the noise
        max_bad_frames=100_000,  # keep the link alive: this test is about what gets through
    )
    cfg = RigConfig(clock="realtime", rate_hz=500, cameras=0, seed=5, link=link)
    sent: dict[int, np.ndarray] = {}
    with SimRig(cfg) as rig:
        cell = bring_up(rig)
        hand = cell.devs.hand
        rng = np.random.default_rng(0)
        lo, hi = hand.limits[:, 0], hand.limits[:, 1]
        for k in range(CYCLES):
            cell.devs.trigger.fire(k)
            cell.devs.trigger.poll(k)
            hand.request_state(k)
            deadline = time.monotonic() + 0.004
            while hand.poll(k) is None and time.monotonic() < deadline:
                select.select([hand.fileno()], [], [], 0.001)
            sent[k] = hand.apply(rng.uniform(lo, hi), k)
        stats = hand.stats()
        wait_for(lambda: read_events(rig.events_path), 5.0, "the event record")
        applied = events(rig, "applied")
    assert stats["link_bad_frames"] > 10, stats  # the faults really hit the line
    assert 0 < len(applied) < CYCLES  # some targets were lost, none invented
    for e in applied:
        assert e["seq"] in sent, e
        np.testing.assert_array_equal(e["targets"], quantise_targets(sent[e["seq"]]))


def test_firmware_reset_is_a_fault_until_reset() -> None:
    with emulator("lockstep", reset_at_cycle=3) as rig:
        cell = bring_up(rig)
        hand = cell.devs.hand
        for _ in range(3):
            step(cell)
            hand.apply(hand.idle_action, cell.cycle - 1)
        k = cell.next_cycle()
        cell.devs.trigger.fire(k)  # the hand board reboots at this trigger
        hand.request_state(k)
        with pytest.raises(DeviceLostError, match="BOOTED"):
            wait_for(lambda: hand.poll(k), 5.0, "the reboot to be reported")
        with pytest.raises(DeviceLostError):
            hand.apply(hand.idle_action, k)
        assert events(rig, "reboot")
        hand.reset()
        got = step(cell)
        assert got["hand"].applied_seq == -1
