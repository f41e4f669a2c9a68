"""What the motion capture does to true marker positions: noise and occlusion dropouts.

Dropout, as seen on the Dactyl rig: each visible marker vanishes as a Poisson process of rate
`dropout_rate_hz` (0.2/s), stays frozen at its last reported position, flagged invisible, for
`dropout_s` +- `dropout_jitter_s` (uniform; about 1 s), then reappears. A frozen marker cannot
vanish again, nor can one in the frame it reappears in (else two occlusions would merge).
All randomness comes from one seeded generator and the model advances by the time between
captures, so in lockstep (sim-time captures) the output is identical run to run.
"""

from __future__ import annotations

import math

import numpy as np


class MocapModel:
    def __init__(
        self,
        n_markers: int,
        *,
        seed: int,
        noise_m: float = 0.0005,
        dropout_rate_hz: float = 0.2,
        dropout_s: float = 1.0,
        dropout_jitter_s: float = 0.2,
    ) -> None:
        if dropout_jitter_s > dropout_s:
            raise ValueError("dropout_jitter_s must not exceed dropout_s")
        self.n = n_markers
        self.noise_m = noise_m
        self.rate = dropout_rate_hz
        self.dropout_s = dropout_s
        self.jitter_s = dropout_jitter_s
        self.rng = np.random.default_rng(seed)
        self.positions = np.zeros((n_markers, 3))
        self.visible = np.ones(n_markers, dtype=bool)
        self._hidden_until = np.zeros(n_markers)  # seconds (model time)
        self._noise = np.zeros((n_markers, 3))
        self._u = np.zeros(n_markers)
        self._fresh = np.zeros(n_markers, dtype=bool)
        self._back = np.zeros(n_markers, dtype=bool)
        self._t: float | None = None
        self.dropouts = 0  # onsets so far (statistics)

    def observe(self, true_positions: np.ndarray, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """One frame at time `t_s` (monotonic seconds): (positions (M, 3), visible (M,)).

        Returns views of internal buffers that the next call overwrites."""
        dt = 0.0 if self._t is None else max(0.0, t_s - self._t)
        self._t = t_s
        # markers whose occlusion is over come back, and are seen in this frame at least
        np.less_equal(self._hidden_until, t_s, out=self._back)
        self._back &= ~self.visible
        self.visible |= self._back
        # visible markers vanish with probability 1 - exp(-rate dt) over the elapsed time
        if self.rate > 0 and dt > 0:
            p = -math.expm1(-self.rate * dt)
            self.rng.random(out=self._u)
            np.less(self._u, p, out=self._fresh)
            self._fresh &= self.visible
            self._fresh &= ~self._back
            k = int(self._fresh.sum())
            if k:
                self.dropouts += k
                # the occlusion started somewhere within dt; it lasts dropout_s +- jitter
                dur = self.dropout_s + self.rng.uniform(-self.jitter_s, self.jitter_s, size=k)
                self._hidden_until[self._fresh] = t_s + dur
                self.visible[self._fresh] = False
        # visible markers report the truth plus noise; hidden ones keep their last position
        if self.noise_m > 0:
            self.rng.standard_normal(out=self._noise)
            self._noise *= self.noise_m
            self._noise += true_positions
            np.copyto(self.positions, self._noise, where=self.visible[:, None])
        else:
            np.copyto(self.positions, true_positions, where=self.visible[:, None])
        return self.positions, self.visible
