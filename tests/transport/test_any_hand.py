"""`raasd robot --config` on a 16-actuator mirror hand with no trigger and no mocap: the hello
announces the hand's spaces, a remote action reaches the hand, the stream carries every array
(mocap's empty one too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from raas_client.session import RemoteRobot
from raas_client.wire import Topic

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]

CELL = """
[hand]
driver = "mirror"
model = "leap-like"
actuators = 16
lag_s = 0.0
"""


@pytest.fixture(scope="module")
def hand16(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    tmp = Path(tmp_path_factory.mktemp("hand16"))
    cell = tmp / "cell.toml"
    cell.write_text(CELL)
    d = start_daemon(tmp, issuer, clock="realtime", rate=20.0, cell=cell)
    yield d
    d.stop()


def test_hello_announces_the_hand_and_actions_reach_it(
    hand16: RobotDaemon, issuer: LeaseIssuer
) -> None:
    assert any("hand mirror 'leap-like' (16 actuators)" in ln for ln in hand16.lines)
    robot = RemoteRobot(hand16.control, server_key=hand16.key, lease=issuer.issue())
    try:
        spaces = robot.hello()["spaces"]
        act = spaces["action"]
        assert act["shape"] == [16] and act["hand_model"] == "leap-like"
        assert act["names"] == [f"joint_{i}" for i in range(16)]
        assert spaces["observation"]["hand_pos"]["shape"] == [16]
        assert spaces["observation"]["mocap"]["shape"] == [0, 3]
        stream = robot.stream((Topic.STEP,))
        robot.open("control")
        robot.arm()
        target = np.array(act["idle"]) + 0.2
        obs = robot.observation()
        for _ in range(30):  # the conditioning pipeline rate-limits: a few cycles to get there
            robot.act(obs.cycle, target)
            obs = robot.observation(after=obs.cycle)
        assert obs["hand_pos"].shape == (16,)
        np.testing.assert_allclose(obs["hand_pos"], target, atol=1e-6)  # lag_s 0: mirrored
        got = stream.recv(timeout_s=5.0)
        assert got is not None
        _, _header, arrays = got
        assert arrays["mocap"].shape == (0, 3) and arrays["applied"].shape == (16,)
        stream.close()
    finally:
        robot.close()
