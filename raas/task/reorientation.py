"""Block reorientation, as in "Learning Dexterous In-Hand Manipulation" (OpenAI, 2018).

Goals are orientations sampled from a seed; a goal is reached when the angle between the block's
orientation and the goal stays under the threshold (0.4 rad) for `hold_cycles` cycles; then a new
goal is sampled. An episode ends at `max_successes` (50) consecutive successes, when the block is
dropped (its centre falls below `drop_height_m`), or when a goal is not reached within
`goal_timeout_s`. Time is counted in cycles, so the outcome depends only on the observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from raas.policy.pose import canonical, orientation_error, quat_mul, random_quaternion
from raas.task.config import TaskConfig

__all__ = ["EpisodeRecord", "Outcome", "ReorientationTask", "TaskConfig"]


Outcome = Literal["running", "success", "dropped", "timeout", "max_successes"]


@dataclass(slots=True)
class EpisodeRecord:
    episode: int
    successes: int
    reason: str
    cycles: int
    goal_cycles: list[int]  # cycles each success took
    #: reason "held": the supervisor's reason code for the stop (nonfinite_action, estop, ...)
    safety_reason: str = ""
    safety_detail: str = ""

    def as_dict(self, period_s: float) -> dict[str, object]:
        d: dict[str, object] = {
            "episode": self.episode,
            "successes": self.successes,
            "reason": self.reason,
            "cycles": self.cycles,
            "seconds": round(self.cycles * period_s, 3),
            "seconds_per_goal": [round(c * period_s, 3) for c in self.goal_cycles],
        }
        if self.safety_reason:
            d["safety_reason"] = self.safety_reason
            d["safety_detail"] = self.safety_detail
        return d


class ReorientationTask:
    """The protocol's bookkeeping for one episode at a time; no I/O."""

    def __init__(self, config: TaskConfig, period_s: float, seed: int) -> None:
        self.config = config
        self.period_s = period_s
        self.seed = seed
        self.timeout_cycles = max(1, round(config.goal_timeout_s / period_s))
        self.goal = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
        self.episode = -1
        self.successes = 0
        self.cycles = 0
        self.goal_age = 0
        self.hold = 0
        self.goal_cycles: list[int] = []
        self._rng = np.random.default_rng(seed)
        self.last_error = math.pi

    def start(
        self, episode: int, object_position: np.ndarray | None, seed: int | None = None
    ) -> None:
        """Begin `episode`: its goals come from (seed, episode), whatever ran before (`seed`
        given: that seed for this episode instead of the task's)."""
        self.episode = episode
        self._rng = np.random.default_rng([self.seed if seed is None else seed, episode])
        self.successes = 0
        self.cycles = 0
        self.goal_cycles = []
        self.goal[:3] = object_position if object_position is not None else 0.0
        self.goal[3:] = (1.0, 0.0, 0.0, 0.0)
        self._new_goal()

    def _new_goal(self) -> None:
        if self.config.goal_mode == "xyz":
            self.goal[3:] = random_quaternion(self._rng)
        else:
            a = self._rng.uniform(-math.pi, math.pi)
            turn = np.array([math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)])
            q = np.empty(4)
            quat_mul(turn, self.goal[3:], q)
            self.goal[3:] = canonical(q)
        self.goal_age = 0
        self.hold = 0

    def judge(self, position: np.ndarray, orientation: np.ndarray) -> Outcome:
        """One cycle with the block at this pose. On 'success' a new goal is already set."""
        cfg = self.config
        self.cycles += 1
        self.goal_age += 1
        if float(position[2]) < cfg.drop_height_m:
            return "dropped"
        self.last_error = orientation_error(orientation, self.goal[3:])
        if self.last_error < cfg.success_threshold_rad:
            self.hold += 1
        else:
            self.hold = 0
        if self.hold >= cfg.hold_cycles:
            self.successes += 1
            self.goal_cycles.append(self.goal_age)
            if self.successes >= cfg.max_successes:
                return "max_successes"
            self._new_goal()
            return "success"
        if self.goal_age >= self.timeout_cycles:
            return "timeout"
        return "running"

    def record(
        self, reason: str, safety_reason: str = "", safety_detail: str = ""
    ) -> EpisodeRecord:
        """The episode as it ends. reason: an Outcome that ends it, or "held" (a safety stop,
        whose reason code is `safety_reason`)."""
        return EpisodeRecord(
            self.episode,
            self.successes,
            reason,
            self.cycles,
            list(self.goal_cycles),
            safety_reason,
            safety_detail,
        )
