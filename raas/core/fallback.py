"""The declared fallback: repeat the last applied action up to N cycles, then the idle action."""

from __future__ import annotations

import enum

import numpy as np


class FallbackKind(enum.IntEnum):
    NONE = 0  # the decided action was used
    REPEAT = 1  # nothing usable in time: the last applied action again
    IDLE = 2  # repeated too often (or nothing applied yet): the declared idle action


class Fallback:
    """Counts and chooses fallbacks. `max_repeats` = N of the cycle contract."""

    def __init__(self, idle_action: np.ndarray, max_repeats: int) -> None:
        if max_repeats < 0:
            raise ValueError("max_repeats must be >= 0")
        self.idle_action = np.array(idle_action, dtype=np.float64)
        self.max_repeats = max_repeats
        self.last_applied = self.idle_action.copy()
        self._have_last = False
        self._consecutive = 0
        self.repeats = 0
        self.idles = 0

    @property
    def total(self) -> int:
        return self.repeats + self.idles

    @property
    def exhausted(self) -> bool:
        """More than N fallbacks in a row: the N+1-th late decision (the supervisor's watchdog
        holds then). Not merely an idle action: a late first cycle, with nothing applied yet to
        repeat, gets the idle action but is only the first of the N+1."""
        return self._consecutive > self.max_repeats

    def reset(self) -> None:
        self.last_applied[:] = self.idle_action
        self._have_last = False
        self._consecutive = 0

    def choose(self, out: np.ndarray) -> FallbackKind:
        """Write the fallback action into `out` and count it."""
        self._consecutive += 1
        if self._have_last and self._consecutive <= self.max_repeats:
            out[:] = self.last_applied
            self.repeats += 1
            return FallbackKind.REPEAT
        out[:] = self.idle_action
        self.idles += 1
        return FallbackKind.IDLE

    def record_applied(self, applied: np.ndarray, kind: FallbackKind) -> None:
        self.last_applied[:] = applied
        self._have_last = True
        if kind is FallbackKind.NONE:
            self._consecutive = 0
