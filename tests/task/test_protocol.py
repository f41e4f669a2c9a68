"""Dactyl's evaluation protocol on scripted block trajectories: successes, drops and timeouts are
counted as the protocol says, goals follow the seed, and the task travels in obs.goal/episode."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from raas_drivers.mocap import MocapFrame

from raas.core.observation import Observation, SourceReading
from raas.policy import load_bundle
from raas.policy.cell import BLOCK_MARKER_OFFSETS
from raas.policy.pose import MarkerPose, orientation_error, quat_mul, random_quaternion
from raas.policy.runner import PolicyRunner
from raas.task.evaluation import EvaluationController
from raas.task.reorientation import TaskConfig

PALM = np.array([1.0, 0.87, 0.17])


def rot_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def set_block(obs: Observation, position: np.ndarray, q: np.ndarray, visible: Any = None) -> None:
    block = np.asarray(BLOCK_MARKER_OFFSETS) @ rot_matrix(q).T + position
    tips = np.tile(np.add(position, [0.0, -0.03, 0.03]), (5, 1))
    vis = np.ones(13, dtype=bool)
    if visible is not None:
        vis[5:] = visible
    frame = MocapFrame(
        cycle=obs.cycle, capture_ns=0, positions=np.vstack([tips, block]), visible=vis
    )
    obs.sources["mocap"] = SourceReading("mocap", 0, True, sample=frame, stale=False)


@pytest.fixture(scope="module")
def runner(small_bundle_dir: Path) -> PolicyRunner:
    return load_bundle(small_bundle_dir, period_s=0.08)


Script = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def run(ctl: EvaluationController, script: Script, max_cycles: int = 10_000) -> Observation:
    """Each cycle the script places the block, given the cycle and the goal of the previous one."""
    obs = Observation()
    out = np.zeros(20)
    for k in range(max_cycles):
        if ctl.done:
            return obs
        obs.cycle = k
        position, q = script(k, obs.goal.copy())
        set_block(obs, position, q)
        ctl.decide(obs, out)
        assert np.isfinite(out).all()
    raise AssertionError("the evaluation never finished")


def follow_goal(k: int, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block turns to whatever the goal was last cycle (a perfect, one-cycle-late policy)."""
    return PALM, goal[3:] if k > 0 else np.array([1.0, 0.0, 0.0, 0.0])


def test_successes_count_up_to_the_maximum(runner: PolicyRunner) -> None:
    events: list[dict[str, Any]] = []
    ctl = EvaluationController(
        runner, episodes=2, seed=1, on_event=events.append, task=TaskConfig(max_successes=5)
    )
    run(ctl, follow_goal)
    s = ctl.summary()
    assert s["successes"] == [5, 5]
    assert s["end_reasons"] == {"max_successes": 2}
    assert s["median_successes"] == 5 and s["max_successes"] == 5
    assert [e["event"] for e in events].count("success") == 10
    ends = [e for e in events if e["event"] == "episode_end"]
    assert [e["episode"] for e in ends] == [0, 1]


def test_drop_ends_the_episode_with_the_successes_so_far(runner: PolicyRunner) -> None:
    def script(k: int, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if k % 100 >= 4:  # falls after 3 successes (cycles 1, 2, 3)
            return PALM - [0.0, 0.0, 0.15], goal[3:]
        return follow_goal(k % 100, goal)

    ctl = EvaluationController(runner, episodes=1, seed=2)
    run(ctl, script)
    s = ctl.summary()
    assert s["successes"] == [3]
    assert s["end_reasons"] == {"dropped": 1}


def test_timeout_when_the_goal_is_never_reached(runner: PolicyRunner) -> None:
    away = np.array([math.cos(0.5), math.sin(0.5), 0.0, 0.0])  # 1 rad off the goal

    def script(k: int, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.empty(4)
        return PALM, quat_mul(goal[3:], away, q) if k > 0 else away

    cfg = TaskConfig(goal_timeout_s=0.8)  # 10 cycles at 80 ms
    ctl = EvaluationController(runner, episodes=3, seed=3, task=cfg)
    run(ctl, script)
    s = ctl.summary()
    assert s["successes"] == [0, 0, 0]
    assert s["end_reasons"] == {"timeout": 3}
    assert [e["cycles"] for e in s["episodes"]] == [10, 10, 10]


def test_just_over_and_under_the_threshold(runner: PolicyRunner) -> None:
    def off_by(angle: float) -> Script:
        turn = np.array([math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0])

        def script(k: int, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            q = np.empty(4)
            return PALM, quat_mul(goal[3:], turn, q)

        return script

    cfg = TaskConfig(goal_timeout_s=0.8, max_successes=3)
    under = EvaluationController(runner, episodes=1, seed=4, task=cfg)
    run(under, off_by(0.39))
    assert under.summary()["successes"] == [3]
    over = EvaluationController(runner, episodes=1, seed=4, task=cfg)
    run(over, off_by(0.41))
    assert over.summary()["end_reasons"] == {"timeout": 1}


def test_goals_follow_the_seed_and_travel_in_the_observation(runner: PolicyRunner) -> None:
    def goals(seed: int) -> list[list[float]]:
        seen: list[list[float]] = []

        def script(k: int, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            seen.append([*goal])
            return follow_goal(k, goal)

        run(
            EvaluationController(runner, episodes=1, seed=seed, task=TaskConfig(max_successes=4)),
            script,
        )
        return seen

    assert goals(7) == goals(7)
    assert goals(7) != goals(8)
    obs = Observation()
    set_block(obs, PALM, np.array([1.0, 0.0, 0.0, 0.0]))
    ctl = EvaluationController(runner, episodes=2, seed=7, task=TaskConfig(max_successes=1))
    ctl.decide(obs, np.zeros(20))
    assert obs.episode == 0
    assert orientation_error(obs.goal[3:], ctl.task.goal[3:]) == 0.0
    np.testing.assert_allclose(obs.goal[:3], PALM)


def test_block_pose_from_markers_survives_occlusion() -> None:
    rng = np.random.default_rng(0)
    est = MarkerPose(np.asarray(BLOCK_MARKER_OFFSETS))
    for _ in range(20):
        q = random_quaternion(rng)
        p = PALM + rng.normal(scale=0.01, size=3)
        markers = np.asarray(BLOCK_MARKER_OFFSETS) @ rot_matrix(q).T + p
        visible = np.ones(8, dtype=bool)
        visible[rng.choice(8, size=5, replace=False)] = False  # only 3 left
        markers[~visible] += 0.05  # frozen somewhere else
        est.update(markers, visible)
        np.testing.assert_allclose(est.position, p, atol=1e-9)
        assert orientation_error(est.orientation, q) < 1e-6


def test_offsets_match_the_simulated_rig() -> None:
    from raas_drivers.sim.world import BLOCK_MARKER_OFFSETS as SIM_OFFSETS
    from raas_drivers.sim.world import MARKER_NAMES

    from raas.policy.cell import CellSpec

    assert np.array_equal(np.asarray(SIM_OFFSETS), np.asarray(BLOCK_MARKER_OFFSETS))
    assert CellSpec().marker_names == MARKER_NAMES
