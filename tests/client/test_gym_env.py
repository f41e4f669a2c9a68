"""The gymnasium env against the simulated cell: check_env passes; spaces from the handshake."""

from __future__ import annotations

import math
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


def _task_daemon(tmp: Path, issuer: LeaseIssuer, task: str) -> RobotDaemon:
    (tmp / "cell.toml").write_text(f"[transport.task]\n{task}\n")
    return start_daemon(tmp, issuer, extra=("--config", str(tmp / "cell.toml")))


def test_reward_and_termination_come_from_the_cells_task(
    tmp_path: Path, issuer: LeaseIssuer
) -> None:
    """A threshold of pi counts every judged cycle as a success: +5 each, the third ends the
    episode (terminated); reset() starts the next one, with new goals."""
    from raas_client.gym import RemoteHandEnv
    from raas_client.session import StepReport

    d = _task_daemon(tmp_path, issuer, "success_threshold_rad = 3.14159\nmax_successes = 3")
    env = RemoteHandEnv(d.control, server_key=d.key, lease=issuer.issue())
    try:
        obs, info = env.reset(seed=0)
        assert info["report"] is None and info["episode"] >= 1
        assert info["task"] is not None and info["task"]["outcome"] == "running"
        goal = obs["goal"].copy()
        assert abs(np.linalg.norm(goal[3:]) - 1.0) < 1e-6  # a goal orientation, not zeros
        rewards, ended = [], None
        for _ in range(6):
            obs, reward, terminated, truncated, info = env.step(np.zeros(20, np.float32))
            assert isinstance(info["report"], StepReport) and info["applied"] is True
            rewards.append(reward)
            if terminated:
                ended = info
                break
            assert not truncated and info["task"]["outcome"] == "success"
        assert ended is not None, rewards
        assert ended["task"]["outcome"] == "max_successes" and ended["successes"] == 3
        # +5 each, plus the change of the block-to-goal angle (within [-pi, pi])
        assert len(rewards) == 3 and all(5 - math.pi <= r <= 5 + math.pi for r in rewards)
        obs, info = env.reset()
        assert info["successes"] == 0 and not np.allclose(obs["goal"][3:], goal[3:])
    finally:
        env.close()
        d.stop()


def test_a_goal_timeout_truncates(tmp_path: Path, issuer: LeaseIssuer) -> None:
    from raas_client.gym import RemoteHandEnv

    # 50 Hz: a goal not reached in 0.2 s (10 cycles) times out; 1e-6 rad is never reached
    d = _task_daemon(tmp_path, issuer, "success_threshold_rad = 1e-6\ngoal_timeout_s = 0.2")
    env = RemoteHandEnv(d.control, server_key=d.key, lease=issuer.issue())
    try:
        env.reset()
        steps = 0
        for _ in range(30):
            _, reward, terminated, truncated, info = env.step(np.zeros(20, np.float32))
            steps += 1
            assert not terminated and np.isfinite(reward)
            if truncated:
                break
        assert truncated and info["task"]["outcome"] == "timeout" and info["task"]["over"]
        assert 8 <= steps <= 11, steps
    finally:
        env.close()
        d.stop()
