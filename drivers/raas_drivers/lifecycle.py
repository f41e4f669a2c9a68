"""Device lifecycle, after ros2_control's hardware lifecycle.

    UNCONFIGURED --configure--> INACTIVE --activate--> ACTIVE
    ACTIVE --deactivate--> INACTIVE;   any --shutdown--> FINALIZED

Subclasses implement the `_on_*` hooks; the public methods check the transition and raise
LifecycleTransitionError when it is not allowed, so a driver never runs half-configured.
"""

from __future__ import annotations

import enum

from raas_drivers.errors import LifecycleTransitionError


class LifecycleState(enum.Enum):
    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"


class Device:
    """Base of every driver: a name, a lifecycle state and the transition checks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = LifecycleState.UNCONFIGURED

    def settle(self) -> None:
        """Spare-time work of a cycle (a clock fit), for the loop to call once every device of
        the cycle has been asked (trigger sent, hand state requested), while they answer: a
        request is never held up by another device's fit. Safe to skip: the fit then runs when
        a stamp is next mapped. Default: nothing."""

    def configure(self) -> None:
        self._require(LifecycleState.UNCONFIGURED, "configure")
        self._on_configure()
        self.state = LifecycleState.INACTIVE

    def activate(self) -> None:
        self._require(LifecycleState.INACTIVE, "activate")
        self._on_activate()
        self.state = LifecycleState.ACTIVE

    def deactivate(self) -> None:
        self._require(LifecycleState.ACTIVE, "deactivate")
        try:
            self._on_deactivate()
        finally:
            self.state = LifecycleState.INACTIVE

    def shutdown(self) -> None:
        """Always allowed, idempotent; deactivates first when active."""
        if self.state is LifecycleState.FINALIZED:
            return
        try:
            if self.state is LifecycleState.ACTIVE:
                self._on_deactivate()
            self._on_shutdown()
        finally:
            self.state = LifecycleState.FINALIZED

    def stats(self) -> dict[str, float]:
        """Counters for metrics and status (e.g. a serial link's CRC errors and round trips).

        Cheap and non-blocking: the loop may read it between cycles. Default: none."""
        return {}

    def require_active(self, what: str) -> None:
        if self.state is not LifecycleState.ACTIVE:
            raise LifecycleTransitionError(
                self.name, f"{what} needs the device active, it is {self.state.value}"
            )

    def _require(self, expected: LifecycleState, what: str) -> None:
        if self.state is not expected:
            raise LifecycleTransitionError(
                self.name, f"cannot {what} from state {self.state.value}"
            )

    # Hooks for subclasses. Defaults do nothing.
    def _on_configure(self) -> None:
        return None

    def _on_activate(self) -> None:
        return None

    def _on_deactivate(self) -> None:
        return None

    def _on_shutdown(self) -> None:
        return None
