"""EvaluationController: Dactyl's evaluation protocol as a raas.core Controller.

Each cycle it judges the block's pose (from the motion-capture block markers: the referee is
never the policy's own vision model), writes the goal and the episode index into `obs.goal` and
`obs.episode` (so publishers, the recorder and a replay see them), then runs the policy.
After the last episode `done` becomes True; the caller stops the loop (loop.request_stop).

Episodes are numbered from 0; episode i's goals come from (seed, i). When an episode ends the
next one starts on the next decide(), with the policy's memory reset; a caller that wants the
block placed back first (a fresh simulated rig, or a person on the real cell) stops the loop on
the 'episode_end' event and runs the next episode on a new loop with the same controller.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from raas.core.observation import Observation
from raas.policy.cell import marker_rows
from raas.policy.pose import MarkerPose
from raas.policy.runner import PolicyRunner
from raas.task.reorientation import EpisodeRecord, ReorientationTask, TaskConfig

EventSink = Callable[[dict[str, Any]], None]


class EvaluationController:
    def __init__(
        self,
        runner: PolicyRunner,
        *,
        episodes: int,
        seed: int,
        on_event: EventSink | None = None,
        task: TaskConfig | None = None,
    ) -> None:
        if episodes < 1:
            raise ValueError("episodes must be >= 1")
        self.runner = runner
        self.episodes = episodes
        self.seed = seed
        self.on_event = on_event
        self.task_config = task if task is not None else TaskConfig()
        self.task = ReorientationTask(self.task_config, runner.period_s, seed)
        self.name = f"eval:{runner.manifest.name}"
        self.needs: frozenset[str] = runner.needs | {"hand", "mocap"}
        cell = runner.cell
        self.referee = MarkerPose(cell.block_marker_offsets)
        self.block_rows = cell.rows(cell.block_markers)
        self.idle = cell.idle_action.copy()
        self.records: list[EpisodeRecord] = []
        self.done = False
        self.episode_over = False  # the last decide() ended an episode (cleared on the next)
        self._in_episode = False

    # ------------------------------------------------------------------ Controller
    def bind_markers(self, names: Sequence[str]) -> None:
        """The cell is up with these motion-capture rows: the referee finds the block's markers
        by name (and the policy its rows). Without them the task cannot be scored: ConfigError
        naming mocap.markers."""
        self.block_rows = marker_rows(
            names, self.runner.cell.block_markers, "raasd eval's referee (the block's pose)"
        )
        self.runner.bind_markers(names)

    def reset(self) -> None:
        """A new loop: an episode in progress restarts from its beginning (same goals)."""
        self._in_episode = False
        self.runner.reset()

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        self.episode_over = False
        if self.done:
            out[:] = self.idle
            obs.episode = self.task.episode
            return True
        m = obs.mocap
        if m is not None:
            rows = self.block_rows
            self.referee.update(m.positions[rows], m.visible[rows])
        if not self._in_episode:
            self._start(len(self.records), self.referee.position if m is not None else None)
        obs.episode = self.task.episode
        if m is not None:
            outcome = self.task.judge(self.referee.position, self.referee.orientation)
            if outcome in ("success", "max_successes"):  # a chime for every success
                self._emit(
                    {
                        "event": "success",
                        "episode": self.task.episode,
                        "successes": self.task.successes,
                        "seconds": round(self.task.goal_cycles[-1] * self.runner.period_s, 3),
                    }
                )
            if outcome not in ("running", "success"):
                self._end(outcome)
        obs.goal[:] = self.task.goal
        if not self._in_episode:
            out[:] = self.idle
            return True
        return self.runner.act(obs, out)

    # ------------------------------------------------------------------ episodes
    def _start(self, episode: int, position: np.ndarray | None) -> None:
        self.task.start(episode, position)
        self.runner.reset()
        self._in_episode = True
        self._emit(
            {
                "event": "episode_start",
                "episode": episode,
                "goal": [round(float(x), 6) for x in self.task.goal],
            }
        )

    def _end(self, reason: str) -> None:
        rec = self.task.record(reason)
        self.records.append(rec)
        self._in_episode = False
        self.episode_over = True
        if len(self.records) >= self.episodes:
            self.done = True
        self._emit({"event": "episode_end", **rec.as_dict(self.runner.period_s)})

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # ------------------------------------------------------------------ results
    def summary(self) -> dict[str, Any]:
        succ = [r.successes for r in self.records]
        reasons: dict[str, int] = {}
        for r in self.records:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        return {
            "task": "block_reorientation",
            "protocol": self.task_config.model_dump(),
            "seed": self.seed,
            "episodes_requested": self.episodes,
            "episodes_run": len(self.records),
            "successes": succ,
            "median_successes": statistics.median(succ) if succ else None,
            "max_successes": max(succ) if succ else None,
            "end_reasons": reasons,
            "episodes": [r.as_dict(self.runner.period_s) for r in self.records],
            "policy": self.runner.stats(),
        }
