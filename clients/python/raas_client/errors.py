"""Every way the client can fail, each named by what went wrong."""

from __future__ import annotations


class RaasClientError(Exception):
    """Base of the client's errors."""


class ProtocolError(RaasClientError):
    """A message did not follow the wire protocol (docs/protocol.md)."""

    def __init__(
        self,
        message: str,
        *,
        version: bool = False,
        too_large: bool = False,
        request_id: object = None,
        peer_version: object = None,
    ) -> None:
        super().__init__(message)
        #: True when only the protocol version was wrong.
        self.version = version
        #: True when the message was over its size limit.
        self.too_large = too_large
        #: The request's `id` when its header was readable enough to have one (else None): an
        #: error reply echoes it.
        self.request_id = request_id
        #: The version the message said it spoke (`v`), when only the version was wrong.
        self.peer_version = peer_version


class RemoteError(RaasClientError):
    """The robot refused a request; `code` is one of `raas_client.wire.ErrorCode`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RobotTimeoutError(RaasClientError):
    """The robot did not answer in time (unreachable, wrong server key, or busy loading)."""


class SessionClosedError(RaasClientError):
    """The robot closed the session (lease ended or revoked, liveness lost, e-stop)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"session closed: {reason}")
        self.reason = reason


class SafetyStopError(RaasClientError):
    """The robot's supervisor stopped remote stepping (hold, ramp-down, fault): `state` and the
    reason code say why (e.g. hold/client_late, hold/stale_sensor, fault/estop). Re-arm to go on."""

    def __init__(self, state: str, reason: str, detail: str = "") -> None:
        more = f" ({detail})" if detail else ""
        super().__init__(f"robot stopped: {state}: {reason}{more}")
        self.state = state
        self.reason = reason
        self.detail = detail


class ConfigurationError(RaasClientError):
    """Missing or bad connection settings (endpoint, server key, lease)."""


class ServiceUnreachableError(ConfigurationError):
    """The reservation service did not answer (wrong URL, down, or the network)."""


class ServiceRefusedError(RaasClientError):
    """The reservation service refused a request; `code` is its `error` code (docs/service.md)
    and the message its `detail`."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class UnknownRobotError(ServiceRefusedError):
    """No robot by that name in the service (the message lists the names there are)."""


class RobotOfflineError(ServiceRefusedError):
    """The robot's daemon is not sending heartbeats (the message says since when)."""


class NoCurrentBookingError(ServiceRefusedError):
    """The caller holds no booking of the robot running now (the message says when the next
    one starts)."""


class BundleNotFoundError(ServiceRefusedError):
    """The service holds no bundle with that sha256 (upload it first: `PUT /bundles/{sha256}`)."""


class BundleTooLargeError(ServiceRefusedError):
    """The bundle is over the service's size limit (the message says the limit)."""


class BundleHashMismatchError(ServiceRefusedError):
    """The uploaded bytes do not hash to the sha256 in the URL (changed or cut in transit)."""


class NoQualifyingRobotError(ServiceRefusedError):
    """No robot has the hand model the job asks for (the message lists the models there are)."""


class JobNotFoundError(ServiceRefusedError):
    """No job with that id, or not one the caller may see (researchers see their own)."""
