"""`reset {scene: true, seed}` on the simulated cell: the rig puts the block back in the palm and
the hand at its start pose, placed from the seed (the same place every time), between episodes;
refused while the hand is under a client's control or a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    """The lockstep robot, with a liveness timeout a loaded machine cannot miss by accident (the
    test sends a step per cycle, but a shared CPU can pause it longer than the usual 0.5 s)."""
    d = start_daemon(Path(tmp_path_factory.mktemp("robot")), issuer, extra=("--liveness", "5"))
    yield d
    d.stop()


BLOCK = slice(5, 13)  # block:m0..m7 (raas_drivers.sim.world.MARKER_NAMES)


def _drive(robot: RemoteRobot, action: np.ndarray, cycles: int) -> tuple[np.ndarray, np.ndarray]:
    """Arm, send `action` for `cycles` cycles, disarm; the block markers seen last and which of
    them were visible (an occluded marker's position means nothing)."""
    robot.arm()
    obs = robot.observation(timeout_s=10)
    for _ in range(cycles):
        robot.act(obs.cycle, action)
        obs = robot.observation(after=obs.cycle, timeout_s=10)
    robot.disarm()
    return np.array(obs["mocap"])[BLOCK], np.array(obs["mocap_visible"])[BLOCK].astype(bool)


def _distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """The largest distance between the markers visible in both."""
    both = a[1] & b[1]
    assert both.sum() >= 3, "too few block markers visible"
    return float(np.linalg.norm(a[0][both] - b[0][both], axis=1).max())


def test_scene_reset_puts_the_block_back_from_the_seed(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        robot.open("control")
        spaces = robot.info["spaces"]["action"]
        idle = np.array(spaces["idle"])
        far = np.array(spaces["high"])  # every joint to its upper limit: the block moves
        starts = []
        for _ in range(2):
            moved = _drive(robot, far, 40)
            reply = robot.reset_scene(seed=3)
            assert reply["scene"]["seed"] == 3 and reply["scene"]["by"] == "alice"
            start = _drive(robot, idle, 2)
            assert _distance(moved, start) > 0.02  # the reset moved the block back (> 2 cm)
            starts.append(start)
        # placed from the seed: the same start both times (within the hand's first cycles)
        assert _distance(starts[0], starts[1]) < 0.01
        other = robot.reset_scene(seed=4)
        assert other["episode"] > reply["episode"]
        assert _distance(_drive(robot, idle, 2), starts[0]) > 0.01  # another seed, elsewhere
    finally:
        robot.close()


def test_scene_reset_is_refused_while_armed_or_with_a_bad_seed(
    daemon: RobotDaemon, issuer: LeaseIssuer
) -> None:
    robot = RemoteRobot(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        robot.open("control")
        robot.arm()
        with pytest.raises(RemoteError) as busy:
            robot.reset_scene(seed=1)
        assert busy.value.code == "busy" and "step mode" in str(busy.value)
        robot.disarm()
        with pytest.raises(RemoteError) as bad:
            robot.request("reset", {"scene": True, "seed": "x"})
        assert bad.value.code == "bad_request" and "seed" in str(bad.value)
        assert "scene" in robot.reset_scene(seed=1)
    finally:
        robot.close()
