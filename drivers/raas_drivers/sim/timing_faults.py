"""Dactyl's timing faults of the plant, as the simulated rig applies them ([rig.faults]).

ActionDelay     targets reach the motors some cycles late: a fixed number of target sets
                (`action_delay_cycles`), and on top of it each actuator, for each new set, with
                probability `action_delay_prob` one set later still (Dactyl: "each actuator's
                action is delayed by one 80 ms step with probability 0.5").
TimestepStretch the plant runs longer than the cycle: every cycle the physics advances its
                period plus, per `timestep_substep_s` sub-step of it, an extra Exp(lambda) of
                time (Dactyl: "every 8 ms sub-step lasts 8 ms + Exp(lambda), lambda in
                [1250, 10000] per episode"); the stamps still say one period passed, so the
                policy sees a world that moved further than it was told.

Both draw from their own seeded generator, once per target set / per cycle, so a lockstep run
stays a function of the seed and of what the loop sent.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class ActionDelay:
    def __init__(self, cycles: int, prob: float, rng: np.random.Generator) -> None:
        self.cycles = cycles
        self.prob = prob
        self.rng = rng
        self._sets: deque[np.ndarray] = deque(maxlen=cycles + 2)
        self.delayed_actuators = 0  # actuator-sets that went out one set late by chance

    @property
    def active(self) -> bool:
        return self.cycles > 0 or self.prob > 0

    def clear(self, current: np.ndarray) -> None:
        """Forget the queue: the motors hold `current` (a hold is never delayed)."""
        self._sets.clear()
        self._sets.append(np.array(current, dtype=np.float64))

    def push(self, targets: np.ndarray) -> np.ndarray:
        """A new target set arrived; return what goes to the motors now."""
        sets = self._sets
        if not sets:
            sets.append(np.array(targets, dtype=np.float64))
        sets.append(np.array(targets, dtype=np.float64))
        n = len(sets)
        base = sets[max(0, n - 1 - self.cycles)]
        if self.prob <= 0:
            return base.copy()
        older = sets[max(0, n - 2 - self.cycles)]
        late = np.less(self.rng.random(base.shape[0]), self.prob)
        self.delayed_actuators += int(late.sum())
        out: np.ndarray = np.where(late, older, base)
        return out


class TimestepStretch:
    def __init__(
        self, rate_hz: float | None, substep_s: float, period_ns: int, rng: np.random.Generator
    ) -> None:
        self.rate_hz = rate_hz
        self.substeps = max(1, round(period_ns * 1e-9 / substep_s))
        self.rng = rng
        self.total_ns = 0  # extra plant time so far

    @property
    def active(self) -> bool:
        return self.rate_hz is not None

    def next_cycle(self) -> int:
        """Draw the extra plant time of one cycle (ns); adds it to `total_ns`."""
        if self.rate_hz is None:
            return 0
        extra = round(float(self.rng.exponential(1.0 / self.rate_hz, self.substeps).sum()) * 1e9)
        self.total_ns += extra
        return extra
