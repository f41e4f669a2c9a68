"""Action conditioning: the desired action becomes the applied target, in four stages, in order.

    1 finite   a NaN or infinite value is rejected: that actuator keeps its previous target
    2 limits   clip to each joint's range, `soft_margin_rad` inside it
    3 rate     each target moves at most `max_step` per cycle (min of max_step_rad and
               max_velocity_rad_s * T) from the previous target
    4 derate   from the hand's own state: an actuator near its force limit or hot has its tracking
               error |target - measured| scaled down (factor 1 -> 0 between the start and full
               thresholds; at 0 the target is the measured position), then stages 2-3 hold again

Each stage that changed anything counts one intervention (per cycle, and per actuator). The
previous target is the reference of the rate limit; `reset(start)` sets it, and the supervisor
calls it with the measured position on every (re-)arm, so the first action never jumps.

Everything is preallocated: a cycle costs a few dozen small numpy operations and no allocation.
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np

from raas.safety.config import ConditioningConfig
from raas.safety.errors import SafetyConfigError


class Stage(IntFlag):
    NONFINITE = 1
    LIMITS = 2
    RATE = 4
    DERATE = 8


STAGES: tuple[Stage, ...] = (Stage.NONFINITE, Stage.LIMITS, Stage.RATE, Stage.DERATE)
STAGE_NAMES: tuple[str, ...] = ("nonfinite", "limits", "rate", "derate")


class ActionConditioner:
    def __init__(
        self,
        limits: np.ndarray,
        effort_limits: np.ndarray,
        cfg: ConditioningConfig,
        period_s: float,
    ) -> None:
        limits = np.asarray(limits, dtype=np.float64)
        n = limits.shape[0]
        if limits.shape != (n, 2) or np.asarray(effort_limits).shape != (n,):
            raise SafetyConfigError(
                f"limits must be (n, 2) and effort limits (n,); got {limits.shape} and "
                f"{np.asarray(effort_limits).shape}"
            )
        if cfg.effort_derate_full <= cfg.effort_derate_start:
            raise SafetyConfigError("effort_derate_full must be above effort_derate_start")
        if cfg.temp_derate_full_c <= cfg.temp_derate_start_c:
            raise SafetyConfigError("temp_derate_full_c must be above temp_derate_start_c")
        self.n = n
        self.cfg = cfg
        mid = limits.mean(axis=1)
        half = np.maximum(0.0, (limits[:, 1] - limits[:, 0]) / 2 - cfg.soft_margin_rad)
        self.lower = mid - half
        self.upper = mid + half
        self.span = limits[:, 1] - limits[:, 0]
        self.max_step = float(min(cfg.max_step_rad, cfg.max_velocity_rad_s * period_s))
        self.effort_limits = np.abs(np.asarray(effort_limits, dtype=np.float64))
        self.last = np.clip(mid, self.lower, self.upper)
        self.factor = np.ones(n)  # the derating factor of the last cycle, per actuator
        #: Cycles in which each stage changed something, and per actuator.
        self.counts = dict.fromkeys(STAGE_NAMES, 0)
        self.per_actuator = np.zeros((len(STAGES), n), dtype=np.int64)
        self._finite = np.ones(n, dtype=bool)
        self._tmp = np.zeros(n)
        self._tmp2 = np.zeros(n)
        self._lo = np.zeros(n)
        self._hi = np.zeros(n)
        self._f2 = np.ones(n)

    def reset(self, start: np.ndarray) -> None:
        """Make `start` (the measured position, clipped) the rate limit's reference."""
        np.clip(start, self.lower, self.upper, out=self.last)
        np.nan_to_num(self.last, copy=False, nan=0.0)
        np.clip(self.last, self.lower, self.upper, out=self.last)

    def condition(
        self,
        desired: np.ndarray,
        out: np.ndarray,
        measured: np.ndarray | None = None,
        efforts: np.ndarray | None = None,
        temperatures: np.ndarray | None = None,
    ) -> int:
        """Write the conditioned target into `out`; return the Stage flags that intervened."""
        flags = 0
        last = self.last
        fin = self._finite
        np.isfinite(desired, out=fin)
        if fin.all():
            out[:] = desired
        else:
            np.copyto(out, last)
            np.copyto(out, desired, where=fin)
            flags |= Stage.NONFINITE
            self.per_actuator[0] += ~fin
        flags |= self._limits(out, 1, Stage.LIMITS)
        flags |= self._rate(out, 2, Stage.RATE)
        if measured is not None and (efforts is not None or temperatures is not None):
            flags |= self._derate(out, measured, efforts, temperatures)
        last[:] = out
        for i, stage in enumerate(STAGES):
            if flags & stage:
                self.counts[STAGE_NAMES[i]] += 1
        return flags

    # ------------------------------------------------------------------ stages
    def _limits(self, out: np.ndarray, row: int, stage: Stage) -> int:
        tmp = self._tmp
        np.clip(out, self.lower, self.upper, out=tmp)
        np.not_equal(tmp, out, out=self._finite)
        if not self._finite.any():
            return 0
        self.per_actuator[row] += self._finite
        out[:] = tmp
        return int(stage)

    def _rate(self, out: np.ndarray, row: int, stage: Stage) -> int:
        lo, hi = self._lo, self._hi
        np.subtract(self.last, self.max_step, out=lo)
        np.add(self.last, self.max_step, out=hi)
        tmp = self._tmp
        np.clip(out, lo, hi, out=tmp)
        np.not_equal(tmp, out, out=self._finite)
        if not self._finite.any():
            return 0
        self.per_actuator[row] += self._finite
        out[:] = tmp
        return int(stage)

    def _derate(
        self,
        out: np.ndarray,
        measured: np.ndarray,
        efforts: np.ndarray | None,
        temperatures: np.ndarray | None,
    ) -> int:
        cfg = self.cfg
        f = self.factor
        f.fill(1.0)
        f2 = self._f2
        if efforts is not None:
            # fraction of the force range, mapped start..full -> 1..0
            np.abs(efforts, out=f2)
            np.divide(f2, self.effort_limits, out=f2)
            np.subtract(cfg.effort_derate_full, f2, out=f2)
            np.divide(f2, cfg.effort_derate_full - cfg.effort_derate_start, out=f2)
            np.minimum(f, f2, out=f)
        if temperatures is not None:
            np.subtract(cfg.temp_derate_full_c, temperatures, out=f2)
            np.divide(f2, cfg.temp_derate_full_c - cfg.temp_derate_start_c, out=f2)
            np.minimum(f, f2, out=f)
        np.nan_to_num(f, copy=False, nan=0.0)  # a sensor that reads NaN derates fully
        np.clip(f, 0.0, 1.0, out=f)
        if f.min() >= 1.0 or not np.isfinite(measured).all():
            return 0
        err, lim = self._tmp, self._tmp2
        np.subtract(out, measured, out=err)
        np.multiply(self.span, f, out=lim)
        np.clip(err, -lim, lim, out=err)
        np.add(measured, err, out=err)
        np.not_equal(err, out, out=self._finite)
        if not self._finite.any():
            return 0
        out[:] = err
        # the measured position may lie outside the soft range or far from the last target:
        # the result obeys the limits and the rate bound all the same
        self._limits(out, 3, Stage.DERATE)
        self._rate(out, 3, Stage.DERATE)
        self.per_actuator[3] += self._finite
        return int(Stage.DERATE)
