"""Scripted controllers: a smooth finger gait that stays inside the joint limits, and idle."""

from __future__ import annotations

import math

import numpy as np
from raas_drivers.hand.config import ACTUATOR_LIMITS, ACTUATOR_NAMES, default_idle_action

from raas.core.observation import Observation


class FingerGait:
    """Each finger flexes and extends on a slow sine, one finger after the other, like a wave;
    the thumb opposes, the wrist sways a little. Open loop in the cycle's time (cycle * T), so
    it is deterministic and never jumps: the largest change per cycle is amplitude * 2 pi f T.

    Targets stay within `span` (default 70%) of each actuator's range around its middle.
    Any hand: `limits` and `actuator_names` are the hand's (default the Shadow hand's); a hand
    whose names are not the Shadow hand's gets a wave along its actuators, in their order.
    """

    name = "gait"
    needs = frozenset({"hand"})

    def __init__(
        self,
        period_s: float,
        frequency_hz: float = 0.5,
        span: float = 0.7,
        *,
        limits: np.ndarray = ACTUATOR_LIMITS,
        actuator_names: tuple[str, ...] = ACTUATOR_NAMES,
    ) -> None:
        if not 0.0 < span < 1.0:
            raise ValueError("span must be in (0, 1)")
        self.period_s = period_s
        self.omega = 2.0 * math.pi * frequency_hz
        limits = np.asarray(limits, dtype=np.float64)
        lo, hi = limits[:, 0], limits[:, 1]
        self.mid = (lo + hi) / 2.0
        self.amp = (hi - lo) / 2.0 * span
        n = len(actuator_names)
        if set(actuator_names) != set(ACTUATOR_NAMES):
            self.phase = np.arange(n) * (2.0 * math.pi / max(n, 1))
            self._arg = np.empty_like(self.phase)
            return
        phase = np.zeros(n)
        for i, name in enumerate(actuator_names):
            finger = name[2:4]
            phase[i] = {"WR": 0.0, "FF": 0.0, "MF": 0.5, "RF": 1.0, "LF": 1.5, "TH": math.pi}[
                finger
            ]
            if name.endswith(("J3", "J4")) and finger not in ("TH", "WR"):
                self.amp[i] *= 0.3  # sideways joints move little
        self.phase = phase
        self._arg = np.empty_like(phase)

    def reset(self) -> None:
        pass

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        t = obs.cycle * self.period_s
        np.multiply(self.omega, t, out=self._arg)
        self._arg += self.phase
        np.sin(self._arg, out=out)
        out *= self.amp
        out += self.mid
        return True


class HoldIdle:
    """Always the idle pose."""

    name = "idle"
    needs = frozenset({"hand"})

    def __init__(self, idle: np.ndarray | None = None) -> None:
        self.idle = np.array(idle, dtype=np.float64) if idle is not None else default_idle_action()

    def reset(self) -> None:
        pass

    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        out[:] = self.idle
        return True
