"""What goes wrong on the robot side of a job, named by what went wrong."""

from __future__ import annotations


class FleetError(Exception):
    """Base of the job worker's errors."""


class ServiceUnreachableError(FleetError):
    """The service did not answer (connection refused, timeout, a 5xx); retried later."""


class ServiceRefusedError(FleetError):
    """The service answered with a refusal: its HTTP status and `error` code are kept."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


class StaleAttemptError(ServiceRefusedError):
    """409 stale_attempt: the job was requeued (no heartbeat for the claim timeout) or ended;
    this worker's attempt is over and what it posts is refused."""


class BundleMismatchError(FleetError):
    """The bundle bytes the service sent do not hash to the job's bundle_sha256."""


class ResetFailedError(FleetError):
    """The cell's reset hook failed (exit code, timeout) or staff did not confirm a reset."""


class NoResetError(FleetError):
    """This cell cannot be put back between episodes (no simulated rig, no [reset] hook, no
    --ask-staff): a job of more than one episode is refused."""
