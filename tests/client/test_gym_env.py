"""The gymnasium env against the simulated cell: check_env passes; spaces from the handshake."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.transport.harness import LeaseIssuer, RobotDaemon, start_daemon

gym_checker = pytest.importorskip("gymnasium.utils.env_checker")

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> LeaseIssuer:
    return LeaseIssuer.create(tmp_path_factory.mktemp("lease"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, issuer: LeaseIssuer) -> Iterator[RobotDaemon]:
    d = start_daemon(Path(tmp_path_factory.mktemp("robot")), issuer)
    yield d
    d.stop()


def test_check_env_passes(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    from raas_client.gym import RemoteHandEnv

    env = RemoteHandEnv(daemon.control, server_key=daemon.key, lease=issuer.issue())
    try:
        with warnings.catch_warnings(record=True):
            gym_checker.check_env(env, skip_render_check=True)
        # The spaces are the robot's: 20 actuator targets within the hand's limits.
        assert env.action_space.shape == (20,)
        assert set(env.observation_space.spaces) >= {"hand_pos", "mocap", "goal"}
        obs, _ = env.reset(seed=1)
        episode0 = env._obs.episode if env._obs else -1
        for _ in range(5):
            obs, _reward, _term, _trunc, info = env.step(env.action_space.sample())
            assert obs in env.observation_space
            assert info["applied"] is True  # lockstep: every action is in time
        obs, info = env.reset()
        assert info["episode"] == episode0 + 1
    finally:
        env.close()


def test_env_reports_a_held_robot_as_busy(daemon: RobotDaemon, issuer: LeaseIssuer) -> None:
    from raas_client.errors import RemoteError
    from raas_client.gym import RemoteHandEnv

    a = RemoteHandEnv(daemon.control, server_key=daemon.key, lease=issuer.issue(sub="a"))
    b = RemoteHandEnv(daemon.control, server_key=daemon.key, lease=issuer.issue(sub="b"))
    try:
        a.reset()
        with pytest.raises(RemoteError) as err:
            b.reset()
        assert err.value.code == "controller_busy"
        obs, *_ = a.step(np.zeros(20, dtype=np.float32))
        assert "hand_pos" in obs
    finally:
        a.close()
        b.close()
