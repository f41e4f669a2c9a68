"""The simulated world: the shipped Shadow-hand block model plus our markers, cameras, thermal."""

from __future__ import annotations

import numpy as np
import pytest
from raas_drivers.hand.config import ACTUATOR_LIMITS, ACTUATOR_NAMES, JOINT_NAMES
from raas_drivers.sim.world import CAMERA_VIEWS, MARKER_NAMES, World, model_path


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_model_is_gymnasium_robotics_block_found_without_importing_it() -> None:
    import sys

    assert model_path().name == "manipulate_block.xml"
    assert model_path().is_file()
    assert "gymnasium_robotics" not in sys.modules


def test_hand_has_24_joints_20_actuators_in_contract_order(world: World) -> None:
    m = world.model
    hand_joints = [m.joint(i).name for i in range(m.njnt) if m.joint(i).name.startswith("robot0:")]
    assert hand_joints == ["robot0:" + n for n in JOINT_NAMES]
    assert [m.actuator(i).name for i in range(m.nu)] == ["robot0:" + n for n in ACTUATOR_NAMES]
    assert m.opt.timestep == pytest.approx(0.002)
    np.testing.assert_allclose(world.ctrlrange, ACTUATOR_LIMITS)


def test_markers_fingertips_then_block_and_three_cameras(world: World) -> None:
    assert len(MARKER_NAMES) == 13
    assert MARKER_NAMES[:5] == ("fftip", "mftip", "rftip", "lftip", "thtip")
    markers = world.marker_positions()
    assert markers.shape == (13, 3)
    block = world.object_pose()[:3]
    # the block's LEDs sit on its corners: sqrt(3) * 24 mm from its centre
    dist = np.linalg.norm(markers[5:] - block, axis=1)
    np.testing.assert_allclose(dist, np.sqrt(3) * 0.024, atol=1e-6)
    assert world.camera_names == tuple(CAMERA_VIEWS) == ("left", "right", "top")
    for name in world.camera_names:
        cam_pos = world.data.cam(name).xpos
        assert 0.45 < np.linalg.norm(cam_pos - np.array([1.0, 0.87, 0.2])) < 0.55


def test_reset_puts_the_block_in_the_palm_seeded() -> None:
    a, b, c = World(), World(), World()
    a.reset(3)
    b.reset(3)
    c.reset(4)
    assert a.object_pose()[2] > 0.04  # on the palm (gymnasium's is_on_palm)
    np.testing.assert_array_equal(a.object_pose(), b.object_pose())
    assert not np.array_equal(a.object_pose(), c.object_pose())
    a.step(1.0)
    assert a.object_pose()[2] > 0.04  # still there a second later under idle targets


def test_targets_are_clamped_and_move_the_joints() -> None:
    w = World()
    applied = w.set_targets(np.full(20, 10.0))
    np.testing.assert_array_equal(applied, w.ctrlrange[:, 1])
    w.set_targets(w.ctrlrange.mean(axis=1))
    ff = JOINT_NAMES.index("FFJ3")
    w.set_targets(np.where(np.arange(20) == 2, 0.3, w.ctrlrange.mean(axis=1)))
    w.step(0.5)
    pos, vel, eff, temp = w.hand_state()
    assert pos.shape == vel.shape == (24,) and eff.shape == temp.shape == (20,)
    assert pos[ff] == pytest.approx(0.3, abs=0.05)


def test_motor_temperature_rises_with_effort() -> None:
    w = World()
    start = w.hand_state()[3].copy()
    np.testing.assert_allclose(start, 25.0)
    # push the wrist against its own limit... by asking for the far end of every range
    w.set_targets(w.ctrlrange[:, 1])
    w.step(5.0)
    temp = w.hand_state()[3]
    assert (temp >= 25.0).all()
    assert temp.max() > 25.01
    assert np.isfinite(temp).all()
