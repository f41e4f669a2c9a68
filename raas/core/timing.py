"""Per-cycle timing records in preallocated arrays, and their summary statistics.

Every figure is kept per cycle (no sampling) in a ring of `capacity` cycles; the summary is taken
over what the ring holds (the whole run when it fits, which `capacity_for()` arranges).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raas.core.fallback import FallbackKind
from raas.core.observation import Step

PHASES = ("trigger", "collect", "decide", "condition", "apply", "publish")
_FIELDS = (
    "cycle",
    "t_k",
    "lateness",
    "period",
    "trigger_to_apply",
    "fallback",
    *(f"phase_{p}" for p in PHASES),
)


def capacity_for(rate_hz: float, duration_s: float | None, default: int = 1 << 20) -> int:
    if duration_s is None:
        return default
    return max(16, math.ceil(rate_hz * duration_s * 1.02) + 16)


class TimingLog:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.arrays: dict[str, np.ndarray] = {
            f: np.zeros(capacity, dtype=np.int64) for f in _FIELDS
        }
        self.count = 0  # cycles recorded in total (may exceed capacity)
        self._prev_trigger = -1
        # Bind once: the hot path indexes these directly.
        a = self.arrays
        self._cycle, self._tk, self._late = a["cycle"], a["t_k"], a["lateness"]
        self._period, self._t2a, self._fb = a["period"], a["trigger_to_apply"], a["fallback"]
        self._ph = [a[f"phase_{p}"] for p in PHASES]

    def record(self, step: Step) -> None:
        i = self.count % self.capacity
        obs = step.obs
        self._cycle[i] = obs.cycle
        self._tk[i] = obs.t_k_ns
        self._late[i] = step.lateness_ns
        self._period[i] = obs.trigger_ns - self._prev_trigger if self._prev_trigger >= 0 else 0
        self._prev_trigger = obs.trigger_ns
        self._t2a[i] = step.trigger_to_apply_ns
        self._fb[i] = int(step.fallback)
        ph = step.phases
        p = self._ph
        p[0][i] = ph.trigger
        p[1][i] = ph.collect
        p[2][i] = ph.decide
        p[3][i] = ph.condition
        p[4][i] = ph.apply
        p[5][i] = ph.publish
        self.count += 1

    def series(self, name: str) -> np.ndarray:
        """The recorded values of one field, oldest first."""
        arr = self.arrays[name]
        n = min(self.count, self.capacity)
        if self.count <= self.capacity:
            return arr[:n]
        start = self.count % self.capacity
        return np.concatenate([arr[start:], arr[:start]])

    def recent(self, name: str, n: int) -> np.ndarray:
        """The last n values (or fewer), for the live status line."""
        arr = self.arrays[name]
        end = self.count % self.capacity
        n = min(n, self.count, self.capacity)
        if end >= n:
            return arr[end - n : end]
        return np.concatenate([arr[self.capacity - (n - end) :], arr[:end]])

    def period_error(self, period_ns: int) -> np.ndarray:
        """|actual trigger spacing - T| for consecutive cycles (skipped slots excluded)."""
        cycles = self.series("cycle")
        periods = self.series("period")
        consecutive = np.zeros(len(cycles), dtype=bool)
        consecutive[1:] = np.diff(cycles) == 1
        err: np.ndarray = np.abs(periods[consecutive] - period_ns)
        return err


def percentiles_us(values_ns: np.ndarray) -> dict[str, float]:
    """p50/p99/p99.9/max/mean in microseconds (empty input gives zeros and n=0)."""
    if values_ns.size == 0:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "mean": 0.0}
    v = values_ns.astype(np.float64) / 1e3
    p50, p99, p999 = np.percentile(v, [50, 99, 99.9])
    return {
        "n": int(v.size),
        "p50": round(float(p50), 3),
        "p99": round(float(p99), 3),
        "p999": round(float(p999), 3),
        "max": round(float(v.max()), 3),
        "mean": round(float(v.mean()), 3),
    }


def fallback_counts(log: TimingLog) -> dict[str, int]:
    fb = log.series("fallback")
    return {
        "repeat": int(np.count_nonzero(fb == FallbackKind.REPEAT)),
        "idle": int(np.count_nonzero(fb == FallbackKind.IDLE)),
    }


def phase_summary(log: TimingLog) -> dict[str, Any]:
    return {p: percentiles_us(log.series(f"phase_{p}")) for p in PHASES}
