"""A dead rig (SIGKILL) turns the next driver call into DeviceLostError naming the device."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from raas_drivers import DeviceLostError
from raas_drivers.sim import RigConfig, SimRig

from tests.drivers.conftest import (
    SMALL,
    Cell,
    bring_up,
    process_gone,
    start_rig,
    step,
    wait_for,
)

pytestmark = [pytest.mark.system]


@pytest.fixture
def cell() -> Iterator[Cell]:
    with SimRig(RigConfig(clock="realtime", cameras=0, seed=0)) as rig:
        c = bring_up(rig)
        step(c)
        yield c


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


CALLS: dict[str, Callable[[Cell], object]] = {
    "hand.poll": lambda c: c.devs.hand.poll(c.cycle),
    "hand.request_state": lambda c: c.devs.hand.request_state(c.cycle),
    "hand.apply": lambda c: c.devs.hand.apply(c.devs.hand.idle_action, c.cycle),
    "trigger.fire": lambda c: c.devs.trigger.fire(c.cycle),
    "trigger.poll": lambda c: c.devs.trigger.poll(c.cycle),
    "mocap.poll": lambda c: c.devs.mocap.poll(c.cycle),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_killed_rig_raises_device_lost_naming_the_device(cell: Cell, call: str) -> None:
    pid = cell.rig.pid
    _kill(pid)
    wait_for(lambda: not cell.rig.alive(), 5.0, "the rig to die")
    device = call.split(".", maxsplit=1)[0]
    # a send into a socket whose peer just died may still succeed once (it is queued before the
    # kernel tears the socket down); the link reports the loss on the call after at the latest
    with pytest.raises(DeviceLostError) as info:
        for _ in range(2):
            CALLS[call](cell)
    assert info.value.device == device
    assert device in str(info.value)


def test_killed_camera_process_names_the_camera() -> None:
    rig = start_rig(RigConfig(clock="realtime", cameras=3, seed=0, **SMALL))
    with rig:
        c = bring_up(rig)
        step(c)
        assert rig.renderer_pid is not None
        _kill(rig.renderer_pid)
        left = c.devs.cameras.sources()[0] if c.devs.cameras else None
        assert left is not None
        wait_for(lambda: not rig.alive(), 5.0, "the camera process to die")
        with pytest.raises(DeviceLostError) as info:
            left.poll(c.cycle + 5)
        assert info.value.device == "cameras.left"
        # the hand does not depend on the camera process
        got = step(Cell(rig, c.devs, [c.devs.hand, c.devs.trigger, c.devs.mocap], c.cycle))
        assert np.isfinite(got["hand"].positions).all()


def test_killed_rig_takes_the_camera_process_with_it() -> None:
    rig = start_rig(RigConfig(clock="realtime", cameras=1, seed=0, **SMALL))
    with rig:
        c = bring_up(rig)
        step(c)
        _kill(rig.pid)
        assert rig.renderer_pid is not None
        renderer = rig.renderer_pid
        wait_for(lambda: process_gone(renderer), 10.0, "the camera process to exit")
        source = c.devs.cameras.sources()[0] if c.devs.cameras else None
        assert source is not None
        with pytest.raises(DeviceLostError) as info:
            source.poll(c.cycle + 1)
        assert info.value.device == "cameras.left"
