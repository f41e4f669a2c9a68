"""The daemon's watchdog layers that act inside the cycle, counted as streaks.

    stale sensor     a source the cycle depends on (required, or read by the controller) silent
                     K cycles in a row: stale, and no late answer to an earlier cycle came
                     either (raas.core.collect)                      -> HOLD, stale_sensor
    loop deadline    M cycles in a row overran or woke a slot late    -> HOLD, loop_deadline
    late decisions   the loop's fallback ran out of repeats (N late or missing decisions in a
                     row): a remote client -> client_late, a policy -> inference_overrun
    non-finite       this many actions in a row carried NaN/inf      -> HOLD, nonfinite_action

The others live elsewhere: the firmware watchdog on the hand's board (no valid command for W ms:
the motors hold), client liveness and lease end in the session (raas.transport.session), a lost
device in the loop (FAULT, the daemon exits 3 and the firmware holds).
"""

from __future__ import annotations

from raas.safety.config import WatchdogConfig
from raas.safety.reasons import Reason

#: The reason codes a watchdog stops with (docs/safety.md section 3): `watchdog_trips`' keys.
TRIP_REASONS = (
    Reason.STALE_SENSOR,
    Reason.LOOP_DEADLINE,
    Reason.NONFINITE_ACTION,
    Reason.CLIENT_LATE,
    Reason.INFERENCE_OVERRUN,
    Reason.CLIENT_LOST,
)


class Watchdogs:
    def __init__(self, cfg: WatchdogConfig) -> None:
        self.cfg = cfg
        self.stale_streak: dict[str, int] = {}
        self.late_streak = 0
        self.nonfinite_streak = 0
        #: Stops by each watchdog layer, counted by the supervisor on every transition a
        #: watchdog caused (Cause.WATCHDOG): these streaks, late decisions, and client liveness.
        self.trips = dict.fromkeys(TRIP_REASONS, 0)

    def reset(self) -> None:
        for name in self.stale_streak:
            self.stale_streak[name] = 0
        self.late_streak = 0
        self.nonfinite_streak = 0

    def stale(self, name: str, is_stale: bool) -> bool:
        """Feed one dependent source's staleness; True when its streak reached K."""
        n = self.stale_streak.get(name, 0) + 1 if is_stale else 0
        self.stale_streak[name] = n
        return n >= self.cfg.stale_cycles

    def deadline(self, slipped: bool) -> bool:
        self.late_streak = self.late_streak + 1 if slipped else 0
        return self.late_streak >= self.cfg.deadline_cycles

    def nonfinite(self, seen: bool) -> bool:
        self.nonfinite_streak = self.nonfinite_streak + 1 if seen else 0
        return self.nonfinite_streak >= self.cfg.nonfinite_cycles
