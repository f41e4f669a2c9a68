"""The mirror hand: applied targets become positions after a first-order lag; any shape."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from raas_drivers.errors import DriverConfigError, LifecycleTransitionError, TargetShapeError
from raas_drivers.mirror import MirrorHand, MirrorHandSettings, load_shape
from raas_drivers.registry import BuildContext, lookup
from raas_drivers.trigger.host import HostTrigger

PERIOD_NS = 20_000_000  # 50 Hz


def hand(lag_s: float = 0.1, n: int = 16) -> MirrorHand:
    shape = load_shape(MirrorHandSettings(actuators=n, limit_rad=(-1.0, 1.0)), "hand", Path())
    h = MirrorHand("hand", shape, period_ns=PERIOD_NS, lag_s=lag_s, temperature_c=31.0)
    h.configure()
    h.activate()
    return h


def test_targets_become_positions_after_a_first_order_lag() -> None:
    h = hand(lag_s=0.1)
    try:
        assert h.idle_action.shape == (16,)
        np.testing.assert_allclose(h.idle_action, 0.0)
        target = np.linspace(-0.9, 0.9, 16)
        applied = h.apply(target, 0)
        np.testing.assert_array_equal(applied, target)
        alpha = 1.0 - math.exp(-0.02 / 0.1)
        for k in range(1, 6):
            h.request_state(k)
            st = h.poll(k)
            assert st is not None and st.cycle == k and st.applied_seq == 0
            np.testing.assert_allclose(st.positions, target * (1.0 - (1.0 - alpha) ** k))
            assert st.positions.shape == (16,) and st.efforts.shape == (16,)
            np.testing.assert_allclose(st.temperatures, 31.0)
        assert h.poll(99) is None  # only the cycle asked for
        assert (np.sign(st.velocities) == np.sign(target)).all()
    finally:
        h.shutdown()


def test_no_lag_mirrors_at_once_and_targets_are_clamped() -> None:
    h = hand(lag_s=0.0, n=4)
    try:
        applied = h.apply(np.array([5.0, -5.0, 0.5, 0.0]), 3)
        np.testing.assert_array_equal(applied, [1.0, -1.0, 0.5, 0.0])
        h.request_state(4)
        st = h.poll(4)
        assert st is not None
        np.testing.assert_array_equal(st.positions, applied)
    finally:
        h.shutdown()


def test_wrong_shape_or_nan_is_refused_and_nothing_changes() -> None:
    h = hand(lag_s=0.0, n=4)
    try:
        with pytest.raises(TargetShapeError, match=r"shape \(4,\)"):
            h.apply(np.zeros(20), 0)
        with pytest.raises(TargetShapeError, match="joint_2"):
            h.apply(np.array([0.1, 0.1, np.nan, 0.1]), 0)
        h.request_state(1)
        st = h.poll(1)
        assert st is not None and st.applied_seq == -1
        np.testing.assert_array_equal(st.positions, h.idle_action)
    finally:
        h.shutdown()
    with pytest.raises(LifecycleTransitionError):
        h.request_state(2)


def test_registration_builds_the_shape_from_settings(tmp_path: Path) -> None:
    spec = lookup("hand", "mirror")
    settings = spec.parse(
        "hand",
        {"model": "leap-like", "actuator_names": ["a", "b", "c"], "effort_limits": [1, 2, 3]},
    )
    ctx = BuildContext(device="hand", base_dir=tmp_path, period_ns=PERIOD_NS)
    dev = spec.build(settings, ctx)
    assert isinstance(dev, MirrorHand)
    assert dev.model == "leap-like" and dev.actuator_names == ("a", "b", "c")
    np.testing.assert_allclose(dev.effort_limits, [1, 2, 3])
    assert dev.actuator_joint_index == (0, 1, 2)
    assert spec.probe is not None
    report = spec.probe(settings, ctx)
    assert report.found and report.ok and "leap-like" in (report.model or "")
    with pytest.raises(DriverConfigError, match=r"hand\.effort_limits"):
        spec.build(spec.parse("hand", {"actuators": 2, "effort_limits": [1.0]}), ctx)


def test_host_trigger_stamps_the_host_clock() -> None:
    t = HostTrigger("trigger")
    t.configure()
    t.activate()
    try:
        sent = t.fire(7)
        ack = t.poll(7)
        assert ack is not None and ack.cycle == 7 and ack.capture_ns == sent
        assert t.poll(8) is None
        assert t.fileno() >= 0
    finally:
        t.shutdown()
