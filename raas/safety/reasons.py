"""The supervisor's vocabulary: its states, who may cause a transition, and the reason codes.

Every transition of the supervisor carries one `Reason` (a stable snake_case code, used in the
status API, the stream, recordings and metrics) and one `Cause` (who asked for it). The codes are
part of the wire protocol: add new ones, never rename.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class SafetyState(IntEnum):
    """docs/safety.md has the transition table. Integer values travel in the stream."""

    IDLE = 0  # nobody controls the hand: it holds the pose it had (or home, after a ramp-down)
    ARMED = 1  # a controller is armed: the hand holds the measured pose until its first action
    RUNNING = 2  # actions reach the hand through the conditioning pipeline
    HOLD = 3  # a watchdog or the client stopped the run: the hand holds where it was measured
    RAMP_DOWN = 4  # a planned end: the targets move to home at a limited speed, then IDLE
    FAULT = 5  # latched (e-stop, lost device): holds where it was measured until cleared

    @property
    def label(self) -> str:
        return self.name.lower()


class Cause(StrEnum):
    """Who caused a transition."""

    POLICY = "policy"  # an in-loop policy run (its start and end)
    CLIENT = "client"  # the controlling remote client (arm, disarm, close, clear its e-stop)
    LEASE = "lease"  # the lease ran out or was revoked
    OPERATOR = "operator"  # staff or anyone with a lease pressing e-stop; staff clearing a fault
    WATCHDOG = "watchdog"  # a watchdog layer of the daemon (staleness, deadlines, liveness)
    DEVICE = "device"  # a device reported a fault or was lost


class Reason(StrEnum):
    """Why the supervisor is in its state. Stable codes: add, never rename."""

    STARTUP = "startup"
    ARMED = "armed"
    FIRST_ACTION = "first_action"
    CLIENT_DISARM = "client_disarm"
    CLIENT_CLOSED = "client_closed"  # the controlling session closed normally
    CLIENT_LOST = "client_lost"  # client liveness: no message within the liveness timeout
    CLIENT_LATE = "client_late"  # more than N actions in a row missed their deadline
    LEASE_ENDED = "lease_ended"
    LEASE_REVOKED = "lease_revoked"
    INFERENCE_OVERRUN = "inference_overrun"  # more than N policy decisions in a row late/missing
    NONFINITE_ACTION = "nonfinite_action"  # more than N actions in a row with NaN/inf values
    STALE_SENSOR = "stale_sensor"  # a required source stale K cycles in a row (detail: which)
    LOOP_DEADLINE = "loop_deadline"  # M cycles in a row overran or were missed
    RUN_DONE = "run_done"  # a policy run finished
    HOME_REACHED = "home_reached"  # a ramp-down arrived at home
    ESTOP = "estop"
    DEVICE_LOST = "device_lost"
    CLEARED = "cleared"  # a fault was cleared
    DAEMON_STOPPING = "daemon_stopping"
    HEALTH_CHECK_DONE = "health_check_done"  # the post-session health check finished
    EPISODE_OVER = "episode_over"  # the cell's task ended a served episode (`serve` episode)
