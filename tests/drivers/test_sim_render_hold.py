"""Realtime rig: a cycle's render is held until the hand's state of that cycle went out (the
renderer would take the cores the pty kernel workers need), but never longer than the hold: a
host that only triggers still gets every camera frame, stamped with its trigger pulse."""

from __future__ import annotations

import pytest
from raas_drivers.cameras import CameraFrame
from raas_drivers.sim import RigConfig
from raas_drivers.source import Source

from tests.drivers.conftest import bring_up, collect, pulse_host, start_rig

pytestmark = [pytest.mark.system]


def test_frames_come_with_and_without_the_hands_request() -> None:
    cfg = RigConfig(
        clock="realtime", rate_hz=12.5, cameras=1, seed=0, camera_width=64, camera_height=48
    )
    rig = start_rig(cfg)
    with rig:
        cell = bring_up(rig)
        assert cell.devs.cameras is not None
        cams: list[Source] = list(cell.devs.cameras.sources())
        for k in range(6):
            ack_ns = cell.devs.trigger.fire(k)
            if k % 2 == 0:  # the loop's way: the hand's state is asked right after the trigger
                cell.devs.hand.request_state(k)
                got = collect([cell.devs.hand, cell.devs.trigger, *cams], k)
            else:  # nobody asks the hand: the render goes when the hold runs out
                got = collect([cell.devs.trigger, *cams], k)
            frame = got[cams[0].source_name]
            assert isinstance(frame, CameraFrame) and frame.cycle == k
            clocks = cfg.clocks  # taken on the pulse: the same instant in both device clocks
            assert pulse_host(frame, clocks.cameras) == pulse_host(got["trigger"], clocks.trigger)
            assert pulse_host(frame, clocks.cameras) >= ack_ns - 1000  # not an older scene
