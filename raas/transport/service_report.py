"""What the robot tells the reservation service: status, the supervisor's state, wear, health.

A loop Publisher. Every cycle it feeds the wear meter (in place, no allocation); about once per
`every_s` (loop time) it hands the service link the latest heartbeat payload, which the link's
child process posts (docs/safety.md, section 6). A health report is sent at once and repeated in
every later payload, so a restarted service learns it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from raas.core.observation import Step
from raas.safety import SafetyState, Supervisor
from raas.safety.wear import WearMeter


class Reports(Protocol):
    def report(self, payload: dict[str, Any]) -> None: ...


class ServiceReporter:
    def __init__(
        self,
        supervisor: Supervisor,
        wear: WearMeter,
        link: Reports | None,
        period_s: float,
        *,
        every_s: float = 1.0,
        wear_file: Path | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.wear = wear
        self.link = link
        self.every = max(1, round(every_s / period_s))
        self.wear_file = wear_file
        self.health: dict[str, Any] | None = None
        #: The robot directory entry (endpoints, server key, hand, devices, capabilities),
        #: registered with every heartbeat once the sockets are bound (docs/fleet.md).
        self.directory: dict[str, Any] | None = None
        self._n = 0

    def publish(self, step: Step) -> None:
        sup = self.supervisor
        if sup.have_measured:
            self.wear.update(sup.measured, sup.efforts, sup.state is SafetyState.RUNNING)
        self._n += 1
        if self.link is not None and self._n % self.every == 0:
            self.link.report(self.payload())

    def on_health(self, report: dict[str, Any]) -> None:
        self.health = report
        if self.link is not None:
            self.link.report(self.payload())

    def payload(self) -> dict[str, Any]:
        sup = self.supervisor
        out: dict[str, Any] = {
            "status": "available",
            "safety": {"state": sup.state.label, "reason": sup.reason.value},
            "wear": self.wear.totals(),
        }
        if self.health is not None:
            out["health"] = self.health
        if self.directory is not None:
            out["directory"] = self.directory
        return out

    def save(self) -> None:
        """Keep the wear counters (outside the loop: between segments and at shutdown)."""
        if self.wear_file is not None:
            self.wear.save(self.wear_file)
