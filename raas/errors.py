"""Errors of the raas daemon, named by what went wrong (driver errors: raas_drivers.errors)."""

from __future__ import annotations


class RaasError(Exception):
    """Base class of every raas daemon error."""


class ConfigError(RaasError):
    """A configuration value is invalid; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid configuration: {field}: {message}")
        self.field = field


class UnknownControllerError(ConfigError):
    """The controller named in the configuration does not exist."""


class LoopStateError(RaasError):
    """The control loop was asked to do something its state does not allow (e.g. run twice)."""


class DeviceTimeoutError(RaasError):
    """In lockstep no device answered within the wall-clock timeout (the collector names them)."""


class DeviceLost(RaasError):  # noqa: N818 - a stop reason, raised out of the loop
    """The loop stopped because a device was lost; the hand was told to hold where it
    was last measured (the supervisor's hold target; best effort)."""

    def __init__(self, device: str, cause: str) -> None:
        super().__init__(f"device lost: {device}: {cause}")
        self.device = device
        self.cause = cause
