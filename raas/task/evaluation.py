"""EvaluationController: Dactyl's evaluation protocol as a raas.core Controller.

Each cycle it judges the block's pose (from the motion-capture block markers: the referee is
never the policy's own vision model), writes the goal and the episode index into `obs.goal` and
`obs.episode` (so publishers, the recorder and a replay see them), then runs the policy.
After the last episode `done` becomes True; the caller stops the loop (loop.request_stop).

A safety stop ends the episode at once: `attach(supervisor)` makes every HOLD or FAULT of the
supervisor end the episode in progress with reason "held" and the stop's reason code
(`safety_reason`, e.g. nonfinite_action). The next episode re-arms the supervisor from HOLD; a
FAULT is latched (an e-stop, a lost device), so it ends the evaluation.

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
from raas.safety import Cause, SafetyState, Supervisor, Transition
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
        self.supervisor: Supervisor | None = None
        self._last_obs: Observation | None = None  # what prepare() warms the referee on

    def attach(self, supervisor: Supervisor, *, first: bool = False) -> None:
        """Follow this supervisor (the cell's): its stops end the episode; episodes re-arm it.
        first: be told before the listeners already there (a remote run's session ends the
        run on a stop, so the episode must be recorded before its summary is taken)."""
        self.detach()
        self.supervisor = supervisor
        if first:
            supervisor.listeners.insert(0, self._on_transition)
        else:
            supervisor.listeners.append(self._on_transition)

    def detach(self) -> None:
        """Stop following the supervisor (the run is over; it outlives this controller)."""
        sup = self.supervisor
        if sup is not None and self._on_transition in sup.listeners:
            sup.listeners.remove(self._on_transition)

    def _on_transition(self, t: Transition) -> None:
        if t.after not in (SafetyState.HOLD, SafetyState.FAULT) or not self._in_episode:
            return
        self._end("held", safety_reason=t.reason.value, safety_detail=t.detail)
        if t.after is SafetyState.FAULT:  # latched until staff clear it: no further episode
            self.done = True

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

    def prepare(self) -> None:
        """Before the trigger (the realtime loop's `[loop] prepare`): the policy's warm-ups
        (PolicyRunner.prepare) and the referee's pose fit on the last observation, so that this
        cycle's judging and inference run warm. Changes nothing decide() will return."""
        if self.done or not self._in_episode:
            return
        self.runner.prepare()
        obs = self._last_obs
        if obs is not None and obs.mocap is not None:
            m = obs.mocap
            self.referee.update(m.positions[self.block_rows], m.visible[self.block_rows])

    def background_warmup(self) -> Callable[[], object] | None:
        """What the loop's warm-up helper runs while the loop waits for the devices: the
        policy's scratch-buffer inference, during an episode only."""
        if self.done or not self._in_episode:
            return None
        return self.runner.warm_background

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        self.episode_over = False
        self._last_obs = obs
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
        sup = self.supervisor
        if sup is not None and sup.state is SafetyState.HOLD:  # the last episode was held
            sup.arm(Cause.POLICY)
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

    def _end(self, reason: str, safety_reason: str = "", safety_detail: str = "") -> None:
        rec = self.task.record(reason, safety_reason, safety_detail)
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
        holds: dict[str, int] = {}
        for r in self.records:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
            if r.safety_reason:
                holds[r.safety_reason] = holds.get(r.safety_reason, 0) + 1
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
            "safety_stops": holds,
            "episodes": [r.as_dict(self.runner.period_s) for r in self.records],
            "policy": self.runner.stats(),
        }
