"""The post-session health check (mode `health`, docs/safety.md section 5): after a controlling
session ends and once the hand is still again, the daemon runs a fixed motion and reports each
check (`health` event, `status`'s `health`, the service link). `arm` and `run` answer `busy`
until it is done; a latched fault is reported instead of moving the hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from raas.core.observation import Observation
from raas.safety import Cause, Reason, SafetyState, Transition
from raas.safety.health import CheckResult, HealthCheck

if TYPE_CHECKING:
    from raas.transport.session import SessionController


class HealthRun:
    """The `health` mode of a SessionController (raas.transport.modes.ControlMode)."""

    name = "health"

    def __init__(
        self,
        host: SessionController,
        build: Callable[[], HealthCheck] | None,
        on_report: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.host = host
        #: Builds the check after every controlling session; its report goes to `on_report`.
        self.build = build
        self.on_report = on_report
        self.check: HealthCheck | None = None
        self.due = False
        self.last: dict[str, Any] | None = None

    # ---------------------------------------------------------------- ControlMode
    def decide(self, obs: Observation, out: np.ndarray) -> bool:
        assert self.check is not None
        ok = self.check.decide(obs, out)
        if self.check.done:
            self.finish(None)
        return ok

    def stopped(self, t: Transition) -> None:
        if t.cause is not Cause.OPERATOR:
            self.finish(f"stopped by the supervisor: {t.after.label} {t.reason.value}")

    def end(self, reason: str) -> None:
        self.finish(reason)

    # ---------------------------------------------------------------- the mode's rules
    def session_ended(self, reason: str) -> None:
        """A controlling session closed: a check is due (not when the daemon stops)."""
        if self.build is not None and reason != "daemon stopping":
            self.due = True

    def start(self) -> None:
        """Once the hand is still again (a ramp-down home ended, or a lost client left it held)
        and nobody controls it."""
        host = self.host
        sup = host.supervisor
        idle = sup.state in (SafetyState.IDLE, SafetyState.HOLD)
        if not idle or host.mode != "hold" or self.build is None:
            if sup.state is SafetyState.FAULT:  # a latched fault: no motion; reported as such
                self.due = False
                self.report(
                    {
                        "ok": False,
                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "checks": [
                            {
                                "name": "supervisor",
                                "ok": False,
                                "detail": f"not run: a {sup.reason.value} fault is latched",
                            }
                        ],
                    }
                )
            return
        self.due = False
        self.check = self.build()
        self.check.reset()
        sup.needs = self.check.needs
        host.mode = "health"
        sup.arm(Cause.OPERATOR)
        host._event("health_started", {})

    def finish(self, aborted: str | None) -> None:
        check, self.check = self.check, None
        if check is None:
            return
        host = self.host
        extra = [CheckResult("completed", aborted is None, aborted or "the whole motion ran")]
        report = check.report(extra).as_dict()
        host.mode = "hold"
        host.supervisor.needs = host.needs
        if aborted is None:
            host.supervisor.ramp_down(Cause.OPERATOR, Reason.HEALTH_CHECK_DONE)
        self.report(report)

    def report(self, report: dict[str, Any]) -> None:
        self.last = report
        self.host._event("health", report)
        if self.on_report is not None:
            self.on_report(report)
