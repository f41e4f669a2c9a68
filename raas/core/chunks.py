"""Action chunks: which action a cycle gets from the chunks a remote policy server sent.

A chunk is H actions computed from the observation of cycle `c`; action `i` is meant for cycle
`c + i`. Chunks arrive late (at cycle `a >= c`), so the loop compensates latency by *indexing*,
never by waiting: at cycle `k` it takes row `k - c` of a chunk that covers `k` (`c <= k < c + H`).

Blending overlapping chunks (one rule per buffer, chosen at construction):

- `Blend.NEWEST` (the default): the chunk computed from the newest observation wins. Each applied
  action then comes from exactly one observation, so its computation age (`k - c`) is exact and
  what the timing report shows is what the hand did; and the newest chunk is the one that saw the
  newest state, so the policy reacts one chunk-latency after a change, not later.
- `Blend.EXPONENTIAL`: ACT's temporal ensembling (Zhao et al. 2023): every chunk covering `k`
  contributes, weighted `exp(-m * i)` with `i = 0` the *oldest* chunk's prediction. Smoother at
  chunk boundaries (less jerk), at the price of mixing older observations into the action; the
  reported age is then the newest contributor's.

No chunk covers `k` -> `action_for` returns False and counts a gap; the caller applies the loop's
declared fallback (`raas.core.fallback`), whose repeat limit N hands over to the watchdogs.

Refusals (counted per reason, nothing stored): wrong shape, non-finite values, computed in the
future (`c > a`), too old (`a - c > max_age`, or no action left for the arrival cycle or later),
and, under `Blend.NEWEST`, superseded (not newer than a chunk already held) — such a chunk could
never win a cycle.

Per cycle (`action_for`) nothing is allocated: the chunks live in a preallocated ring of
`capacity` slots of shape (H, n); an arriving chunk is copied into the slot of the oldest one.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class Blend(enum.Enum):
    NEWEST = "newest"
    EXPONENTIAL = "exponential"


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    WRONG_SIZE = "wrong_size"
    NON_FINITE = "non_finite"
    FUTURE = "future"
    TOO_OLD = "too_old"
    SUPERSEDED = "superseded"


REFUSALS: tuple[Verdict, ...] = tuple(v for v in Verdict if v is not Verdict.ACCEPTED)


@dataclass(frozen=True)
class ChunkUse:
    """What became of one accepted chunk, reported once when it leaves the buffer."""

    computed_cycle: int
    arrival_cycle: int
    used: int  # cycles whose applied action took (or, blended, included) a row of this chunk
    discarded: int  # H - used: rows that were too late, overridden by a newer chunk, or unasked
    #: the first row applied (its computation age, in cycles, when it was applied); rows
    #: first_row .. first_row + used - 1 were applied, one per cycle (under either rule a chunk's
    #: rows are used without a hole: from its first use until it is superseded or runs out);
    #: -1 when no row was used
    first_row: int = -1

    def cycles_used(self) -> range:
        """The cycles that applied (or, blended, included) a row of this chunk."""
        if self.used == 0:
            return range(0)
        start = self.computed_cycle + self.first_row
        return range(start, start + self.used)


_EMPTY = -1


class ChunkBuffer:
    """The chunks in hand and the rule that turns them into one action per cycle.

    `on_retire` is called with a `ChunkUse` when a chunk leaves (expired, overwritten, `close()`);
    this happens on `offer`, on the first `action_for` after its last covered cycle, or on close.
    """

    def __init__(
        self,
        n_actuators: int,
        horizon: int,
        *,
        capacity: int | None = None,
        max_age: int | None = None,
        blend: Blend = Blend.NEWEST,
        decay: float = 0.01,
        on_retire: Callable[[ChunkUse], None] | None = None,
    ) -> None:
        if n_actuators < 1:
            raise ValueError(f"n_actuators must be >= 1, got {n_actuators}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        cap = horizon if capacity is None else capacity
        if cap < 1:
            raise ValueError(f"capacity must be >= 1, got {cap}")
        age = horizon - 1 if max_age is None else max_age
        if age < 0:
            raise ValueError(f"max_age must be >= 0, got {age}")
        if decay < 0 or not math.isfinite(decay):
            raise ValueError(f"decay must be a finite number >= 0, got {decay}")
        self.n_actuators = n_actuators
        self.horizon = horizon
        self.max_age = age
        self.blend = blend
        self.decay = decay
        self.on_retire = on_retire
        self._actions = np.zeros((cap, horizon, n_actuators), dtype=np.float64)
        self._computed = np.full(cap, _EMPTY, dtype=np.int64)
        self._arrival = np.zeros(cap, dtype=np.int64)
        self._used = np.zeros(cap, dtype=np.int64)
        self._first = np.full(cap, -1, dtype=np.int64)
        self._scratch = np.zeros(n_actuators, dtype=np.float64)
        self._newest = _EMPTY
        self._last_k = -(2**62)
        self.accepted = 0
        self.refused = dict.fromkeys(REFUSALS, 0)
        self.gaps = 0  # cycles no chunk covered
        self.covered = 0  # cycles a chunk covered
        self.last_age = -1  # computation age of the last action given (k - computed cycle)

    # -- arrival -------------------------------------------------------------------------------
    def offer(self, computed_cycle: int, actions: np.ndarray, arrival_cycle: int) -> Verdict:
        """Check and store one chunk; returns why it was refused, or ACCEPTED."""
        verdict = self._check(computed_cycle, actions, arrival_cycle)
        if verdict is not Verdict.ACCEPTED:
            self.refused[verdict] += 1
            return verdict
        self._expire(arrival_cycle)
        slot = self._free_or_oldest_slot()
        self._retire(slot)
        self._actions[slot] = actions
        self._computed[slot] = computed_cycle
        self._arrival[slot] = arrival_cycle
        self._used[slot] = 0
        self._first[slot] = -1
        self._newest = max(self._newest, computed_cycle)
        self.accepted += 1
        return Verdict.ACCEPTED

    def _check(self, computed: int, actions: np.ndarray, arrival: int) -> Verdict:
        if actions.shape != (self.horizon, self.n_actuators):
            return Verdict.WRONG_SIZE
        if not np.isfinite(actions).all():
            return Verdict.NON_FINITE
        if computed > arrival:
            return Verdict.FUTURE
        if arrival - computed > self.max_age or computed + self.horizon <= arrival:
            return Verdict.TOO_OLD
        if self.blend is Blend.NEWEST and computed <= self._newest:
            return Verdict.SUPERSEDED
        if (self._computed == computed).any():  # the same cycle twice under blending
            return Verdict.SUPERSEDED
        return Verdict.ACCEPTED

    def _free_or_oldest_slot(self) -> int:
        return int(np.argmin(self._computed))  # an empty slot (-1) sorts first

    # -- per cycle -----------------------------------------------------------------------------
    def action_for(self, k: int, out: np.ndarray) -> bool:
        """Write the action for cycle `k` into `out`; False (a counted gap) if no chunk covers k.

        `k` must not decrease from one call to the next."""
        if k < self._last_k:
            raise ValueError(f"cycle {k} is before the last asked cycle {self._last_k}")
        self._last_k = k
        self._expire(k)
        if self.blend is Blend.NEWEST:
            slot = self._newest_covering(k)
            if slot < 0:
                self.gaps += 1
                self.last_age = -1
                return False
            age = k - int(self._computed[slot])
            out[:] = self._actions[slot, age]
            if self._used[slot] == 0:
                self._first[slot] = age
            self._used[slot] += 1
        else:
            age = self._ensemble(k, out)
            if age < 0:
                self.gaps += 1
                self.last_age = -1
                return False
        self.covered += 1
        self.last_age = age
        return True

    def _newest_covering(self, k: int) -> int:
        best, best_c = -1, _EMPTY
        for slot in range(self._computed.shape[0]):
            c = int(self._computed[slot])
            if c != _EMPTY and c <= k < c + self.horizon and c > best_c:
                best, best_c = slot, c
        return best

    def _ensemble(self, k: int, out: np.ndarray) -> int:
        """ACT weights exp(-m*i), i=0 the oldest covering chunk; returns the newest's age or -1."""
        # visit the covering chunks oldest first without sorting (no allocation): repeated min
        total = 0.0
        i = 0
        newest_c = _EMPTY
        prev_c = _EMPTY
        while True:
            slot, c_min = -1, 2**62
            for s in range(self._computed.shape[0]):
                c = int(self._computed[s])
                if c != _EMPTY and c > prev_c and c <= k < c + self.horizon and c < c_min:
                    slot, c_min = s, c
            if slot < 0:
                break
            w = math.exp(-self.decay * i)
            if i == 0:
                np.multiply(self._actions[slot, k - c_min], w, out=out)
            else:
                np.multiply(self._actions[slot, k - c_min], w, out=self._scratch)
                np.add(out, self._scratch, out=out)
            total += w
            if self._used[slot] == 0:
                self._first[slot] = k - c_min
            self._used[slot] += 1
            newest_c = prev_c = c_min
            i += 1
        if i == 0:
            return -1
        np.divide(out, total, out=out)
        return k - newest_c

    # -- leaving -------------------------------------------------------------------------------
    def _expire(self, k: int) -> None:
        """Retire the chunks whose last row is before cycle k."""
        for slot in range(self._computed.shape[0]):
            c = int(self._computed[slot])
            if c != _EMPTY and c + self.horizon <= k:
                self._retire(slot)

    def _retire(self, slot: int) -> None:
        c = int(self._computed[slot])
        if c == _EMPTY:
            return
        self._computed[slot] = _EMPTY
        if self.on_retire is not None:
            used = int(self._used[slot])
            first = int(self._first[slot])
            self.on_retire(ChunkUse(c, int(self._arrival[slot]), used, self.horizon - used, first))

    def close(self) -> None:
        """Retire every chunk still held (end of a run), reporting each."""
        order = np.argsort(self._computed)
        for slot in order:
            self._retire(int(slot))

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())
