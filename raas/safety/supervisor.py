"""The supervisor: the one place that decides what reaches the motors, as a state machine.

    IDLE --arm--> ARMED --first action--> RUNNING
    ARMED | RUNNING --disarm, watchdog, client lost--> HOLD --arm (re-arm)--> ARMED
    ARMED | RUNNING | HOLD --lease end, session end, run done--> RAMP_DOWN --home--> IDLE
    any --e-stop, lost device--> FAULT --clear--> IDLE

Targets by state (the controller's action counts only in RUNNING):
    IDLE, HOLD, FAULT  the hold target: the measured actuator position when the state was
                       entered (the last target when no state has been measured yet), so a stop
                       never moves the hand anywhere it was not already
    ARMED              the hold target, until the controller's first usable action
    RUNNING            the conditioning pipeline (raas.safety.conditioning)
    RAMP_DOWN          from the last target towards home at `ramp_velocity_rad_s`

Re-arming (from IDLE, HOLD or a ramp-down) re-measures: the rate limit starts from the measured
position, so nothing jumps. A FAULT is latched; an e-stop may be cleared by the client or staff,
any other fault only by staff (Cause.OPERATOR). docs/safety.md has the whole table.

Everything here runs in the loop's thread: requests from the session controller arrive inside
its decide(), and `cycle()` runs in the loop's condition phase.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from raas_drivers.hand import HandState

from raas.core.observation import SourceReading
from raas.safety.conditioning import ActionConditioner
from raas.safety.config import SafetyConfig
from raas.safety.errors import TransitionRefusedError
from raas.safety.reasons import Cause, Reason, SafetyState
from raas.safety.watchdogs import Watchdogs

S = SafetyState
_ACTIVE = (S.ARMED, S.RUNNING)


@dataclass(frozen=True, slots=True)
class Transition:
    cycle: int
    wall_ns: int  # time.time_ns() when it happened
    mono_ns: int  # time.monotonic_ns()
    before: SafetyState
    after: SafetyState
    cause: Cause
    reason: Reason
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "cycle": self.cycle,
            "wall_ns": self.wall_ns,
            "mono_ns": self.mono_ns,
            "from": self.before.label,
            "to": self.after.label,
            "cause": self.cause.value,
            "reason": self.reason.value,
            "detail": self.detail,
        }


class Supervisor:
    def __init__(
        self,
        limits: np.ndarray,
        effort_limits: np.ndarray,
        home: np.ndarray,
        joint_index: Iterable[int],
        cfg: SafetyConfig,
        period_s: float,
    ) -> None:
        self.cfg = cfg
        self.conditioner = ActionConditioner(limits, effort_limits, cfg.conditioning, period_s)
        self.watchdogs = Watchdogs(cfg.watchdogs)
        self.joint_index = np.array(list(joint_index), dtype=np.intp)
        n = len(self.joint_index)
        c = self.conditioner
        self.home = np.clip(np.asarray(home, dtype=np.float64), c.lower, c.upper)
        self.ramp_step = cfg.ramp_velocity_rad_s * period_s
        self.state = S.IDLE
        self.cause = Cause.OPERATOR
        self.reason = Reason.STARTUP
        self.detail = ""
        self.since_ns = time.monotonic_ns()
        self.hold_target = self.home.copy()
        self.target = self.home.copy()  # the last target this supervisor produced
        self.measured = self.home.copy()
        self.have_measured = False  # a whole, plausible pose was measured (stops hold it)
        self.have_hand = False  # any hand state arrived (derating uses it, NaN per actuator)
        # a reading further than this outside the joint range is not believed as a pose
        self._plausible_lo = np.asarray(limits, dtype=np.float64)[:, 0] - 0.2
        self._plausible_hi = np.asarray(limits, dtype=np.float64)[:, 1] + 0.2
        self.efforts = np.zeros(n)
        self.temperatures = np.zeros(n)
        self.cycle_index = -1
        self.history: deque[Transition] = deque(maxlen=256)
        self.reason_counts: dict[str, int] = {}
        self.listeners: list[Callable[[Transition], None]] = []
        self.needs: frozenset[str] = frozenset()  # sources the running controller reads
        self._late_reason = Reason.INFERENCE_OVERRUN
        self._step = np.zeros(n)  # scratch, so a cycle allocates nothing
        self._finite = np.ones(n, dtype=bool)

    # ------------------------------------------------------------------ status
    @property
    def running(self) -> bool:
        return self.state is S.RUNNING

    @property
    def active(self) -> bool:
        """ARMED or RUNNING: a controller's actions may reach the hand."""
        return self.state in _ACTIVE

    def status_label(self) -> str:
        """For a status line: the state, with the reason of a stop (HOLD nonfinite_action)."""
        if self.state in (S.HOLD, S.FAULT):
            return f"{self.state.name} {self.reason.value}"
        return self.state.name

    def status(self) -> dict[str, object]:
        c = self.conditioner
        return {
            "state": self.state.label,
            "reason": self.reason.value,
            "cause": self.cause.value,
            "detail": self.detail,
            "since_s": round((time.monotonic_ns() - self.since_ns) / 1e9, 3),
            "interventions": dict(c.counts),
            "watchdog_trips": {k.value: v for k, v in self.watchdogs.trips.items()},
            "transitions": dict(self.reason_counts),
            "last_transitions": [t.as_dict() for t in list(self.history)[-8:]],
        }

    # ------------------------------------------------------------------ requests
    def arm(self, cause: Cause, *, late_reason: Reason = Reason.INFERENCE_OVERRUN) -> None:
        """IDLE, HOLD or RAMP_DOWN -> ARMED, re-measured; a no-op when already armed/running.
        `late_reason` names what a run of late decisions means for this controller."""
        if self.state is S.FAULT:
            raise TransitionRefusedError(
                self.state, "arm", cause, f"a {self.reason.value} fault is latched; clear it first"
            )
        self._late_reason = late_reason
        if self.state in _ACTIVE:
            return
        start = self.measured if self.have_measured else self.target
        self.conditioner.reset(start)
        self.hold_target[:] = self.conditioner.last
        self.watchdogs.reset()
        self._go(S.ARMED, cause, Reason.ARMED)

    def disarm(self, cause: Cause, reason: Reason = Reason.CLIENT_DISARM, detail: str = "") -> None:
        """ARMED or RUNNING -> HOLD (where the hand is); otherwise nothing changes."""
        if self.state in _ACTIVE:
            self._hold_here()
            self._go(S.HOLD, cause, reason, detail)

    hold = disarm  # a watchdog's stop and a client's disarm end in the same state

    def ramp_down(self, cause: Cause, reason: Reason, detail: str = "") -> None:
        """A planned end (lease over, session closed, run done): ARMED, RUNNING or HOLD ->
        RAMP_DOWN to home, then IDLE. IDLE, FAULT and a ramp already running are kept."""
        if self.state in (S.ARMED, S.RUNNING, S.HOLD):
            self._go(S.RAMP_DOWN, cause, reason, detail)

    def fault(self, cause: Cause, reason: Reason, detail: str = "") -> None:
        """Any state -> FAULT, holding where the hand is. Latched until `clear`."""
        if self.state is S.FAULT:
            self.reason_counts[reason.value] = self.reason_counts.get(reason.value, 0) + 1
            return
        self._hold_here()
        self._go(S.FAULT, cause, reason, detail)

    def clear(self, cause: Cause) -> None:
        """FAULT -> IDLE, holding where the hand is. An e-stop may be cleared by the client or
        staff; any other fault (a lost device) by staff only."""
        if self.state is not S.FAULT:
            return
        if self.reason is not Reason.ESTOP and cause is not Cause.OPERATOR:
            raise TransitionRefusedError(
                self.state, "clear", cause, f"a {self.reason.value} fault is cleared by staff"
            )
        self._hold_here()
        self._go(S.IDLE, cause, Reason.CLEARED)

    # ------------------------------------------------------------------ the cycle
    def begin(self, cycle: int, hand: HandState | None) -> None:
        """Start of cycle `cycle`'s decide phase: take the hand's state of this cycle, so that a
        stop requested during decide holds the pose of this cycle."""
        self.cycle_index = cycle
        self._measure(hand)

    def cycle(
        self,
        readings: Iterable[SourceReading],
        desired: np.ndarray,
        decided: bool,
        fallback_exhausted: bool,
        slipped: bool,
        out: np.ndarray,
    ) -> int:
        """The condition phase: watchdogs, then the target of this state into `out`.

        decided: the controller's action is this cycle's own (not a fallback);
        fallback_exhausted: the loop's repeats ran out (N late decisions in a row);
        slipped: this cycle woke a slot late or the last one overran.
        Returns the conditioning Stage flags (0 outside RUNNING). Call `begin` first."""
        if self.state in _ACTIVE:
            self._watch(readings, desired, fallback_exhausted, slipped)
        flags = 0
        st = self.state
        if st is S.ARMED and decided and np.isfinite(desired, out=self._finite).any():
            self._go(S.RUNNING, Cause.POLICY, Reason.FIRST_ACTION)
            st = S.RUNNING
        if st is S.RUNNING:
            c = self.conditioner
            if self.have_hand:
                flags = c.condition(desired, out, self.measured, self.efforts, self.temperatures)
            else:
                flags = c.condition(desired, out)
        elif st is S.RAMP_DOWN:
            step = self._step
            np.subtract(self.home, self.target, out=step)
            np.clip(step, -self.ramp_step, self.ramp_step, out=step)
            np.add(self.target, step, out=out)
            np.subtract(self.home, out, out=step)
            if np.abs(step, out=step).max() <= self.cfg.home_tolerance_rad:
                out[:] = self.home
                self.hold_target[:] = self.home
                self._go(S.IDLE, self.cause, Reason.HOME_REACHED)
        else:
            out[:] = self.hold_target
        self.target[:] = out
        if st is not S.RUNNING:
            self.conditioner.last[:] = out
        return flags

    def device_lost(self, device: str) -> None:
        self.fault(Cause.DEVICE, Reason.DEVICE_LOST, device)

    # ------------------------------------------------------------------ internals
    def _measure(self, hand: HandState | None) -> None:
        if hand is None:
            return
        np.take(hand.positions, self.joint_index, out=self.measured)
        self.efforts[:] = hand.efforts
        self.temperatures[:] = hand.temperatures
        self.have_hand = True
        m = self.measured
        ok = self._finite  # NaN compares False, so this also requires finite values
        self.have_measured = bool(
            np.greater_equal(m, self._plausible_lo, out=ok).all()
            and np.less_equal(m, self._plausible_hi, out=ok).all()
        )

    def _watch(
        self,
        readings: Iterable[SourceReading],
        desired: np.ndarray,
        fallback_exhausted: bool,
        slipped: bool,
    ) -> None:
        w = self.watchdogs
        for r in readings:
            # a late answer (an earlier cycle's, after its deadline) shows the source alive
            if (r.required or r.name in self.needs) and w.stale(r.name, r.stale and not r.late):
                self.hold(Cause.WATCHDOG, Reason.STALE_SENSOR, r.name)
                return
        if w.deadline(slipped):
            self.hold(Cause.WATCHDOG, Reason.LOOP_DEADLINE, f"{w.late_streak} cycles")
            return
        if w.nonfinite(not np.isfinite(desired, out=self._finite).all()):
            self.hold(Cause.WATCHDOG, Reason.NONFINITE_ACTION)
            return
        if fallback_exhausted:
            self.hold(Cause.WATCHDOG, self._late_reason)

    def _hold_here(self) -> None:
        src = self.measured if self.have_measured else self.target
        c = self.conditioner
        np.clip(src, c.lower, c.upper, out=self.hold_target)

    def _go(self, after: SafetyState, cause: Cause, reason: Reason, detail: str = "") -> None:
        t = Transition(
            self.cycle_index,
            time.time_ns(),
            time.monotonic_ns(),
            self.state,
            after,
            cause,
            reason,
            detail,
        )
        self.state, self.cause, self.reason, self.detail = after, cause, reason, detail
        self.since_ns = t.mono_ns
        self.history.append(t)
        self.reason_counts[reason.value] = self.reason_counts.get(reason.value, 0) + 1
        if cause is Cause.WATCHDOG:  # every watchdog stop, wherever it was detected
            trips = self.watchdogs.trips
            trips[reason] = trips.get(reason, 0) + 1
        for listener in self.listeners:
            listener(t)
