"""Errors of the safety layer, named by what went wrong."""

from __future__ import annotations

from raas.errors import RaasError
from raas.safety.reasons import Cause, SafetyState


class SafetyError(RaasError):
    """Base class of the safety layer's errors."""


class TransitionRefusedError(SafetyError):
    """A transition the supervisor's table does not allow from this state for this cause."""

    def __init__(self, state: SafetyState, request: str, cause: Cause, why: str) -> None:
        super().__init__(f"cannot {request} in state {state.label} ({cause.value}): {why}")
        self.state = state
        self.request = request
        self.cause = cause
        self.why = why


class SafetyConfigError(SafetyError):
    """A safety setting is inconsistent with the hand (e.g. a per-actuator list of wrong length)."""


class WearFileCorruptError(SafetyError):
    """The wear counter file could not be read; it was kept beside as `.corrupt`, counting
    restarts from zero (raas.safety.wear.WearMeter.load)."""

    def __init__(self, path: str, kept_as: str, why: str) -> None:
        super().__init__(
            f"wear counters in {path} are unreadable ({why}); kept as {kept_as}, counting from zero"
        )
        self.path = path
        self.kept_as = kept_as
        self.why = why


class ActionShapeError(SafetyError):
    """An action (or the buffer for the target) does not have one value per actuator."""

    def __init__(
        self, expected: tuple[int, ...], desired: tuple[int, ...], out: tuple[int, ...]
    ) -> None:
        super().__init__(
            f"an action must have shape {expected}; got desired {desired} and out {out}"
        )
        self.expected = expected
        self.desired = desired
        self.out = out
