"""MirrorHand: applied targets become the measured positions after a first-order lag.

Like ros2_control's mock hardware, it lets the loop, the safety layer, policies, recording and
the transport run on a hand of any shape with no hardware. Per cycle (request_state(k)) each
actuator moves towards its last applied target: p += (target - p) * (1 - exp(-T / lag_s))
(lag_s 0: it is there at once); velocity is the change over the period; effort is a small
share of the effort limit that follows the tracking error; temperatures are constant. One joint
per actuator. The sample of cycle k is ready as soon as it is asked for.
"""

from __future__ import annotations

import math
import time

import numpy as np

from raas_drivers.errors import TargetShapeError
from raas_drivers.hand.driver import HandDriver, HandState
from raas_drivers.hand.shape import HandShape
from raas_drivers.in_process import InProcessDevice

#: effort reported at full tracking error, as a share of the effort limit
EFFORT_SHARE = 0.3
#: tracking error (rad) at which the effort saturates
EFFORT_ERROR_RAD = 0.2


class MirrorHand(InProcessDevice, HandDriver):
    def __init__(
        self,
        name: str,
        shape: HandShape,
        *,
        period_ns: int,
        lag_s: float = 0.05,
        temperature_c: float = 30.0,
    ) -> None:
        super().__init__(name)
        self.model = shape.model
        self.actuator_names = shape.actuator_names
        self.joint_names = shape.joint_names
        self.limits = shape.limits
        self.effort_limits = shape.effort_limits
        self.actuator_joint_index = shape.actuator_joint_index
        n = len(shape.actuator_names)
        self._lo = np.ascontiguousarray(shape.limits[:, 0])
        self._hi = np.ascontiguousarray(shape.limits[:, 1])
        self._idle = np.clip(shape.limits.mean(axis=1), self._lo, self._hi)
        period_s = period_ns / 1e9
        self.alpha = 1.0 if lag_s <= 0 else 1.0 - math.exp(-period_s / lag_s)
        self.period_s = period_s
        self._pos = self._idle.copy()
        self._target = self._idle.copy()
        self._seq = -1
        self._temps = np.full(n, float(temperature_c))
        self._state: HandState | None = None

    @property
    def idle_action(self) -> np.ndarray:
        idle: np.ndarray = self._idle.copy()
        return idle

    def request_state(self, cycle: int) -> None:
        self.require_active("request_state")
        before = self._pos.copy()
        self._pos += (self._target - self._pos) * self.alpha
        err = np.clip((self._target - self._pos) / EFFORT_ERROR_RAD, -1.0, 1.0)
        self._state = HandState(
            cycle=cycle,
            capture_ns=time.monotonic_ns(),
            positions=self._pos.copy(),
            velocities=(self._pos - before) / self.period_s,
            efforts=err * EFFORT_SHARE * self.effort_limits,
            temperatures=self._temps.copy(),
            applied_seq=self._seq,
        )
        self._ready()

    def poll(self, cycle: int) -> HandState | None:
        self._drain()
        st = self._state
        return st if st is not None and st.cycle == cycle else None

    def apply(self, targets: np.ndarray, cycle: int) -> np.ndarray:
        self.require_active("apply")
        arr = np.asarray(targets, dtype=np.float64)
        n = len(self.actuator_names)
        if arr.shape != (n,):
            raise TargetShapeError(self.name, f"targets must have shape ({n},), got {arr.shape}")
        bad = ~np.isfinite(arr)
        if bad.any():
            names = [self.actuator_names[i] for i in np.flatnonzero(bad)]
            raise TargetShapeError(self.name, f"non-finite target for {', '.join(names)}")
        np.clip(arr, self._lo, self._hi, out=self._target)
        self._seq = cycle
        applied: np.ndarray = self._target.copy()
        return applied
