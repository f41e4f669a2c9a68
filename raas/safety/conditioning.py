"""Action conditioning: the desired action becomes the applied target, in four stages, in order.

    1 finite   a NaN or infinite value is rejected: that actuator keeps its previous target
    2 limits   clip to each joint's range, `soft_margin_rad` inside it
    3 rate     each target moves at most `max_step` per cycle (min of max_step_rad and
               max_velocity_rad_s * T) from the previous target
    4 derate   from the hand's own state: an actuator near its force limit or hot has its tracking
               error (target - measured) scaled by a factor that falls 1 -> 0 between the start
               and full thresholds; at 0 the target is the measured position. A sensor that reads
               NaN derates fully; an actuator whose position reads NaN/inf is pulled towards its
               previous target instead (it does not move). The result obeys stages 2-3 again.

Invariants, for ANY desired/measured/effort/temperature values (NaN, +-inf, 1e300, any sign):
the target is finite, within [lower, upper], and |target - previous target| <= max_step (up to
rounding, < 1e-12). The previous target is always inside [lower, upper]: `reset` clips it there
and every cycle leaves its (clipped) target there; the supervisor writes its hold and ramp
targets (also inside) between runs.

Each stage that changed anything counts one intervention per cycle (`counts`) and one per
actuator it changed (`per_actuator`, one row per stage in STAGES order). `reset(start)` makes
`start` (the measured position) the rate limit's reference; the supervisor calls it on every
(re-)arm, so the first action never jumps.

Everything is preallocated: a cycle is a few dozen ufunc calls on (n,) buffers, no array is
allocated, nothing in Python loops over actuators.
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np

from raas.safety.config import ConditioningConfig
from raas.safety.errors import ActionShapeError, SafetyConfigError


class Stage(IntFlag):
    NONFINITE = 1
    LIMITS = 2
    RATE = 4
    DERATE = 8


STAGES: tuple[Stage, ...] = (Stage.NONFINITE, Stage.LIMITS, Stage.RATE, Stage.DERATE)
STAGE_NAMES: tuple[str, ...] = ("nonfinite", "limits", "rate", "derate")

_NONFINITE = int(Stage.NONFINITE)
_LIMITS = int(Stage.LIMITS)
_RATE = int(Stage.RATE)
_DERATE = int(Stage.DERATE)

# bound once: a cycle calls these a few dozen times
_abs = np.abs
_add = np.add
_subtract = np.subtract
_multiply = np.multiply
_maximum = np.maximum
_minimum = np.minimum
_fmax = np.fmax
_isfinite = np.isfinite
_not_equal = np.not_equal
_greater_equal = np.greater_equal
_logical_not = np.logical_not
_copyto = np.copyto
_count_nonzero = np.count_nonzero


class ActionConditioner:
    def __init__(
        self,
        limits: np.ndarray,
        effort_limits: np.ndarray,
        cfg: ConditioningConfig,
        period_s: float,
    ) -> None:
        limits = np.array(limits, dtype=np.float64)
        effort = np.abs(np.array(effort_limits, dtype=np.float64))
        n = limits.shape[0] if limits.ndim == 2 else -1
        if n < 1 or limits.shape != (n, 2) or effort.shape != (n,):
            raise SafetyConfigError(
                f"limits must be (n, 2) and effort limits (n,); got {limits.shape} and "
                f"{effort.shape}"
            )
        if not np.isfinite(limits).all() or (limits[:, 0] > limits[:, 1]).any():
            raise SafetyConfigError(f"joint limits must be finite with lower <= upper: {limits}")
        if not np.isfinite(effort).all() or (effort <= 0).any():
            raise SafetyConfigError(f"effort limits must be finite and non-zero: {effort}")
        if not (np.isfinite(period_s) and period_s > 0):
            raise SafetyConfigError(f"the period must be a positive number of seconds: {period_s}")
        if cfg.effort_derate_full <= cfg.effort_derate_start:
            raise SafetyConfigError("effort_derate_full must be above effort_derate_start")
        if cfg.temp_derate_full_c <= cfg.temp_derate_start_c:
            raise SafetyConfigError("temp_derate_full_c must be above temp_derate_start_c")
        self.n = n
        self.shape = (n,)
        self.cfg = cfg
        mid = limits.mean(axis=1)
        half = np.maximum(0.0, (limits[:, 1] - limits[:, 0]) / 2 - cfg.soft_margin_rad)
        #: The soft range every target stays in.
        self.lower = mid - half
        self.upper = mid + half
        self.span = limits[:, 1] - limits[:, 0]
        #: The largest change of any target in one cycle.
        self.max_step = float(min(cfg.max_step_rad, cfg.max_velocity_rad_s * period_s))
        self.effort_limits = effort
        #: The previous target: the rate limit's reference (inside [lower, upper]).
        self.last = np.clip(mid, self.lower, self.upper)
        #: The derating factor of the last cycle that had the hand's state, per actuator.
        self.factor = np.ones(n)
        #: Cycles in which each stage changed something, and per actuator (rows: STAGES order).
        self.counts = dict.fromkeys(STAGE_NAMES, 0)
        self.per_actuator = np.zeros((len(STAGES), n), dtype=np.int64)
        self._rows = tuple(self.per_actuator[i] for i in range(len(STAGES)))
        # derate factor = c - k x: (full - |effort| / limit) / (full - start), and the same for
        # the temperature
        effort_band = cfg.effort_derate_full - cfg.effort_derate_start
        self._k_effort = 1.0 / (effort * effort_band)
        self._c_effort = float(cfg.effort_derate_full / effort_band)
        temp_band = cfg.temp_derate_full_c - cfg.temp_derate_start_c
        self._k_temp = float(-1.0 / temp_band)  # negative: f = c + k t
        self._c_temp = float(cfg.temp_derate_full_c / temp_band)
        # scratch buffers, reused every cycle
        self._mask = np.ones(n, dtype=bool)
        self._tmp = np.zeros(n)
        self._lo = np.zeros(n)  # this cycle's window: [last - max_step, last + max_step] ∩ limits
        self._hi = np.zeros(n)
        self._ref = np.zeros(n)
        self._f2 = np.ones(n)

    def reset(self, start: np.ndarray) -> None:
        """Make `start` (the measured position) the rate limit's reference, clipped to the soft
        range; an actuator whose `start` is NaN/inf keeps its previous reference."""
        mask = self._mask
        _isfinite(start, out=mask)
        _copyto(self.last, start, where=mask)
        _maximum(self.last, self.lower, out=self.last)
        _minimum(self.last, self.upper, out=self.last)

    def condition(
        self,
        desired: np.ndarray,
        out: np.ndarray,
        measured: np.ndarray | None = None,
        efforts: np.ndarray | None = None,
        temperatures: np.ndarray | None = None,
    ) -> int:
        """Write the conditioned target into `out` (may be `desired` itself); return the Stage
        flags that intervened. Raises ActionShapeError when `desired` or `out` is not (n,)."""
        shape = self.shape
        if desired.shape != shape or out.shape != shape:
            raise ActionShapeError(shape, desired.shape, out.shape)
        last, lo, hi, tmp, mask = self.last, self._lo, self._hi, self._tmp, self._mask
        # this cycle's window: the rate bound around the previous target, inside the limits
        # (the previous target is inside them, so lo <= hi)
        _subtract(last, self.max_step, out=lo)
        _maximum(lo, self.lower, out=lo)
        _add(last, self.max_step, out=hi)
        _minimum(hi, self.upper, out=hi)
        # the common case: every value finite and inside the window (NaN != NaN fails it)
        _maximum(desired, lo, out=tmp)
        _minimum(tmp, hi, out=tmp)
        _not_equal(tmp, desired, out=mask)
        if _count_nonzero(mask):
            flags = self._stages(desired, out)
        else:
            _copyto(out, tmp)
            flags = 0
        if (
            measured is not None
            and (efforts is not None or temperatures is not None)
            and self._derate(out, measured, efforts, temperatures)
        ):
            flags |= _DERATE
        _copyto(last, out)
        if flags:
            counts = self.counts
            if flags & _NONFINITE:
                counts["nonfinite"] += 1
            if flags & _LIMITS:
                counts["limits"] += 1
            if flags & _RATE:
                counts["rate"] += 1
            if flags & _DERATE:
                counts["derate"] += 1
        return flags

    # ------------------------------------------------------------------ stages
    def _stages(self, desired: np.ndarray, out: np.ndarray) -> int:
        """Stages 1-3 one at a time, each counted (only when something is outside the window)."""
        flags = 0
        mask = self._mask
        # 1 finite: a rejected value keeps the previous target
        _isfinite(desired, out=mask)
        _copyto(out, desired, casting="unsafe")
        if _count_nonzero(mask) != self.n:
            _logical_not(mask, out=mask)
            _copyto(out, self.last, where=mask)
            row = self._rows[0]
            _add(row, mask, out=row)
            flags |= _NONFINITE
        # 2 limits
        if self._clip_counted(out, self.lower, self.upper, 1):
            flags |= _LIMITS
        # 3 rate
        if self._clip_counted(out, self._lo, self._hi, 2):
            flags |= _RATE
        return flags

    def _clip_counted(self, out: np.ndarray, lo: np.ndarray, hi: np.ndarray, i: int) -> bool:
        """Clip `out` into [lo, hi]; count the actuators it changed in row `i`."""
        tmp, mask = self._tmp, self._mask
        _maximum(out, lo, out=tmp)
        _minimum(tmp, hi, out=tmp)
        _not_equal(tmp, out, out=mask)
        if not _count_nonzero(mask):
            return False
        row = self._rows[i]
        _add(row, mask, out=row)
        _copyto(out, tmp)
        return True

    def _derate(
        self,
        out: np.ndarray,
        measured: np.ndarray,
        efforts: np.ndarray | None,
        temperatures: np.ndarray | None,
    ) -> bool:
        f, mask = self.factor, self._mask
        if efforts is not None:
            _abs(efforts, out=f)
            _minimum(f, 1e100, out=f)  # no overflow warning from an absurd reading
            _multiply(f, self._k_effort, out=f)
            _subtract(self._c_effort, f, out=f)
            if temperatures is not None:
                f2 = self._f2
                _multiply(temperatures, self._k_temp, out=f2)
                _add(f2, self._c_temp, out=f2)
                _minimum(f, f2, out=f)  # NaN propagates
        elif temperatures is not None:
            _multiply(temperatures, self._k_temp, out=f)
            _add(f, self._c_temp, out=f)
        else:
            return False
        _minimum(f, 1.0, out=f)
        _greater_equal(f, 1.0, out=mask)  # NaN: False
        if _count_nonzero(mask) == self.n:
            return False
        _fmax(f, 0.0, out=f)  # NaN (a sensor reading NaN) -> 0: derates fully

        # the reference: the measured position, or the previous target where it is not finite,
        # inside the limits (so the result lies between two points inside them)
        ref, tmp = self._ref, self._tmp
        _isfinite(measured, out=mask)
        _copyto(ref, self.last)
        _copyto(ref, measured, where=mask)
        _maximum(ref, self.lower, out=ref)
        _minimum(ref, self.upper, out=ref)

        # target = ref + f * (out - ref); actuators at f = 1 keep `out` exactly
        _subtract(out, ref, out=tmp)
        _multiply(tmp, f, out=tmp)
        _add(ref, tmp, out=tmp)
        _greater_equal(f, 1.0, out=mask)
        _copyto(tmp, out, where=mask)
        # the rate window again: the measured position may be far from the previous target
        _maximum(tmp, self._lo, out=tmp)
        _minimum(tmp, self._hi, out=tmp)
        _not_equal(tmp, out, out=mask)
        if not _count_nonzero(mask):
            return False
        row = self._rows[3]
        _add(row, mask, out=row)
        _copyto(out, tmp)
        return True
