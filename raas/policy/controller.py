"""PolicyController: the policy alone, as a raas.core Controller (no task).

The goal comes from `obs.goal` and episode boundaries from `obs.episode` (written by whoever runs
the task, or by a replay of a recording), so decide() is a pure function of the sequence of
observations: the same sequence gives the same actions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from raas.core.observation import Observation
from raas.policy.runner import PolicyRunner


class PolicyController:
    #: The loop does not run the policy (nor its warm-ups) while the supervisor holds: its
    #: actions are ignored then, and a slow policy's time would stretch the holding cycles.
    rests_while_held = True

    def __init__(self, runner: PolicyRunner) -> None:
        self.runner = runner
        self.name = f"policy:{runner.manifest.name}"
        self.needs: frozenset[str] = runner.needs
        self._episode: int | None = None

    def bind_markers(self, names: Sequence[str]) -> None:
        """The cell's motion-capture rows, by name (PolicyRunner.bind_markers)."""
        self.runner.bind_markers(names)

    def reset(self) -> None:
        self.runner.reset()
        self._episode = None

    def prepare(self) -> None:
        """Called by the loop shortly before the trigger (LoopConfig.prepare_lead_ms)."""
        self.runner.prepare()

    def background_warmup(self) -> Callable[[], object] | None:
        """What the loop's warm-up helper runs while the loop waits for the devices: the
        runner's scratch-buffer inference (thread-safe beside decide); none after a cycle whose
        inference overran its budget (PolicyRunner.prepare says why)."""
        return None if self.runner.last_overran else self.runner.warm_background

    def policy_stats(self) -> dict[str, Any]:
        """The policy's figures for a run's summary and stats JSON (`policy`,
        docs/stats-json.md): the bundle, its hash, load and in-loop latency, counters."""
        return self.runner.stats()

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        if obs.episode != self._episode:
            if self._episode is not None:
                self.runner.reset()
            self._episode = obs.episode
        return self.runner.act(obs, out)
