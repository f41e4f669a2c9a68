"""The safety layer: the supervisor state machine, action conditioning and the watchdogs that
decide what reaches the motors. docs/safety.md describes it for operators."""

from __future__ import annotations

import functools

from raas_drivers.hand.driver import HandDriver

from raas.safety.conditioning import STAGE_NAMES, ActionConditioner, Stage
from raas.safety.config import ConditioningConfig, SafetyConfig, WatchdogConfig
from raas.safety.errors import SafetyConfigError, SafetyError, TransitionRefusedError
from raas.safety.reasons import Cause, Reason, SafetyState
from raas.safety.supervisor import Supervisor, Transition

__all__ = [
    "STAGE_NAMES",
    "ActionConditioner",
    "Cause",
    "ConditioningConfig",
    "Reason",
    "SafetyConfig",
    "SafetyConfigError",
    "SafetyError",
    "SafetyState",
    "Stage",
    "Supervisor",
    "Transition",
    "TransitionRefusedError",
    "WatchdogConfig",
    "supervisor_for_hand",
]


def supervisor_for_hand(hand: HandDriver, cfg: SafetyConfig, period_s: float) -> Supervisor:
    """A supervisor for a HandDriver: its limits, effort limits, joint map and idle pose as home
    (all from the driver, so any hand shape works). An e-stop also reaches the hand's own e-stop
    (`HandDriver.emergency_stop`) in the call that latches it, whatever runs (a session's cycle,
    a policy, the bundle-load pause)."""
    sup = Supervisor(
        hand.limits,
        hand.effort_limits,
        hand.idle_action,
        hand.actuator_joint_index,
        cfg,
        period_s,
    )
    sup.listeners.append(functools.partial(_relay_estop, hand))
    return sup


def _relay_estop(hand: HandDriver, t: Transition) -> None:
    if t.after is SafetyState.FAULT and t.reason is Reason.ESTOP:
        hand.emergency_stop()
    elif t.before is SafetyState.FAULT and t.after is not SafetyState.FAULT:
        hand.clear_emergency_stop()
