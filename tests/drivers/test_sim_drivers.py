"""The sim drivers keep the contracts: lifecycle checks, apply() validation and clamping,
handshake errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from raas_drivers import (
    DeviceNotReadyError,
    LifecycleTransitionError,
    Source,
    TargetShapeError,
)
from raas_drivers.hand import ACTUATOR_NAMES, HandDriver
from raas_drivers.hand.config import ACTUATOR_LIMITS
from raas_drivers.hand.serial_driver import SerialHandDriver
from raas_drivers.mocap import MocapDriver
from raas_drivers.sim import RigConfig, SimMocapDriver, SimRig
from raas_drivers.trigger import TriggerDriver
from raas_drivers.trigger.serial_driver import SerialTriggerDriver
from raas_firmware_bridge.messages import quantise_targets

from tests.drivers.conftest import Cell, step

pytestmark = [pytest.mark.system]


def test_drivers_implement_the_contracts(lockstep_cell: Cell) -> None:
    devs = lockstep_cell.devs
    assert isinstance(devs.hand, HandDriver) and isinstance(devs.trigger, TriggerDriver)
    assert isinstance(devs.mocap, MocapDriver) and devs.cameras is None
    for s in (devs.hand, devs.trigger, devs.mocap):
        assert isinstance(s, Source)
        assert s.poll(10_000) is None  # non-blocking, nothing for a future cycle


def test_apply_clamps_and_returns_what_is_applied(lockstep_cell: Cell) -> None:
    hand = lockstep_cell.devs.hand
    step(lockstep_cell)
    wild = np.linspace(-5, 5, 20)
    applied = hand.apply(wild, 0)
    # clamped to the limits, then what the wire carries (1e-4 rad steps)
    np.testing.assert_array_equal(applied, quantise_targets(np.clip(wild, *ACTUATOR_LIMITS.T)))
    assert np.abs(applied - np.clip(wild, *ACTUATOR_LIMITS.T)).max() <= 0.5e-4 + 1e-12
    assert step(lockstep_cell)["hand"].applied_seq == 0
    idle = hand.idle_action
    assert idle.shape == (20,)
    assert ((idle >= ACTUATOR_LIMITS[:, 0]) & (idle <= ACTUATOR_LIMITS[:, 1])).all()


@pytest.mark.parametrize(
    "targets",
    [np.zeros(19), np.zeros((20, 1)), np.full(20, np.nan), np.r_[np.zeros(19), np.inf]],
    ids=["short", "2d", "nan", "inf"],
)
def test_bad_targets_raise_and_send_nothing(lockstep_cell: Cell, targets: np.ndarray) -> None:
    hand = lockstep_cell.devs.hand
    step(lockstep_cell)
    hand.apply(hand.idle_action, 0)
    with pytest.raises(TargetShapeError) as info:
        hand.apply(targets, 1)
    assert info.value.device == "hand"
    if not np.isfinite(targets).all() and targets.shape == (20,):
        assert ACTUATOR_NAMES[-1] in str(info.value)
    assert step(lockstep_cell)["hand"].applied_seq == 0  # the bad targets never arrived


def test_lifecycle_is_enforced() -> None:
    with SimRig(RigConfig(clock="lockstep", cameras=0)) as rig:
        devs = rig.devices()
        assert rig.devices() is devs
        with pytest.raises(LifecycleTransitionError):
            devs.hand.apply(np.zeros(20), 0)
        devs.hand.configure()
        with pytest.raises(LifecycleTransitionError):
            devs.hand.request_state(0)
        with pytest.raises(LifecycleTransitionError):
            devs.hand.configure()
        devs.hand.activate()
        devs.hand.request_state(0)
        devs.hand.deactivate()
        with pytest.raises(LifecycleTransitionError):
            devs.trigger.fire(0)
        devs.hand.shutdown()
        devs.hand.shutdown()  # idempotent


def test_missing_rig_gives_device_not_ready_quickly(tmp_path: Path) -> None:
    path = str(tmp_path / "nothing.sock")
    for dev in (
        SerialHandDriver("hand", path, request_timeout_s=0.5),
        SerialTriggerDriver("trigger", path, request_timeout_s=0.5),
        SimMocapDriver("mocap", path, connect_timeout_s=0.5),
    ):
        t = time.monotonic()
        with pytest.raises(DeviceNotReadyError) as info:
            dev.configure()
        assert info.value.device == dev.name
        assert time.monotonic() - t < 2.0
