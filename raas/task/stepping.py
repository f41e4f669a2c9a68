"""The cell's task for a remote stepper: Dactyl's block reorientation, judged by the daemon.

A client that steps the robot (remote step, `RemoteHandEnv`) is scored on the same task as a
policy run in the loop (raas.task.reorientation): each observation carries the goal in `goal`
and a `task` field with this cycle's judgement, so reward and termination come from the cell,
not from a copy of the rules in every client:

    outcome    running | success | dropped | timeout | max_successes; after an ending outcome
               the episode stays `over` (the outcome repeated) until the client resets
    successes  successes so far in this episode
    error_rad  angle between the block and the goal judged this cycle
    reward     Dactyl's reward: the decrease of that angle since the last cycle (to the same
               goal), plus `success_reward` (+5) on a success, `drop_reward` (-20) on a drop
    over       the episode ended (on this cycle or before)

The first observation of an episode (after arm or reset) carries the new goal and is not
judged (outcome running, reward 0): the client acts on it first. The referee is the motion
capture's block markers, as in `raasd eval`."""

from __future__ import annotations

from typing import Any

import numpy as np

from raas.core.observation import Observation
from raas.policy.cell import BLOCK_MARKER_OFFSETS, CellSpec
from raas.policy.pose import MarkerPose, orientation_error
from raas.task.config import TaskConfig
from raas.task.reorientation import ReorientationTask

_ENDS = ("dropped", "timeout", "max_successes")


class SteppingTask:
    @classmethod
    def for_cell(
        cls, markers: tuple[str, ...], period_s: float, config: TaskConfig, seed: int = 0
    ) -> SteppingTask | None:
        """The task for a cell whose motion capture tracks the block, else None: a cell without
        motion capture (or without the block's markers) cannot referee it, and its observations
        carry no `task`."""
        if any(m not in markers for m in CellSpec().block_markers):
            return None
        return cls(markers, period_s, config, seed)

    def __init__(
        self, markers: tuple[str, ...], period_s: float, config: TaskConfig, seed: int = 0
    ) -> None:
        block = CellSpec().block_markers
        missing = [m for m in block if m not in markers]
        if missing:
            raise ValueError(f"the cell's motion capture has no block marker {missing[0]!r}")
        self.rows = np.array([markers.index(m) for m in block], dtype=np.intp)
        self.referee = MarkerPose(np.array(BLOCK_MARKER_OFFSETS, dtype=np.float64))
        self.config = config
        self.task = ReorientationTask(config, period_s, seed)
        self._episode: int | None = None  # the episode to start on the next judged cycle
        self._seed: int | None = None  # its goals' seed (None: the task's)
        self._over: str | None = None  # the outcome that ended the episode
        self._prev_error: float | None = None

    def new_episode(self, episode: int, seed: int | None = None) -> None:
        """Start `episode` on the next judged cycle (its goals come from (seed, episode); `seed`
        None: the task's seed). A served episode (`serve` with `episode`) passes the job's
        seed, so its goals are those of a bundle run with that seed."""
        self._episode, self._seed = episode, seed

    def warm(self, obs: Observation) -> None:
        """Run the referee's pose fit (an SVD: ~10 us warm, ~150 us after 80 ms idle) on `obs`,
        changing no judgement: called before the trigger so that judge() runs warm."""
        m = obs.mocap
        if m is not None:
            self.referee.update(m.positions[self.rows], m.visible[self.rows])

    def judge(self, obs: Observation) -> dict[str, Any] | None:
        """This cycle's judgement, and the goal written into obs.goal. None without mocap."""
        m = obs.mocap
        if m is None:
            return None
        self.referee.update(m.positions[self.rows], m.visible[self.rows])
        pos, ori = self.referee.position, self.referee.orientation
        task = self.task
        if self._episode is not None:  # the episode's first observation: the goal, no judgement
            task.start(self._episode, pos, self._seed)
            self._episode, self._over = None, None
            self._prev_error = orientation_error(ori, task.goal[3:])
            task.last_error = self._prev_error
            obs.goal[:] = task.goal
            return self._fields("running", 0.0, False)
        obs.goal[:] = task.goal
        if self._over is not None:
            return self._fields(self._over, 0.0, True)
        outcome = task.judge(pos, ori)
        error = task.last_error
        reward = 0.0 if self._prev_error is None else self._prev_error - error
        if outcome in ("success", "max_successes"):
            reward += self.config.success_reward
            # the next cycle's decrease is measured to the new goal
            self._prev_error = orientation_error(ori, task.goal[3:])
        elif outcome == "dropped":
            reward += self.config.drop_reward
        else:
            self._prev_error = error
        obs.goal[:] = task.goal
        over = outcome in _ENDS
        if over:
            self._over = outcome
        return self._fields(outcome, reward, over, error)

    def _fields(
        self, outcome: str, reward: float, over: bool, error: float | None = None
    ) -> dict[str, Any]:
        err = self.task.last_error if error is None else error
        return {
            "outcome": outcome,
            "successes": self.task.successes,
            "error_rad": round(float(err), 6),
            "reward": round(float(reward), 6),
            "over": over,
        }
