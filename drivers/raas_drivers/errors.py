"""Every error a driver raises, named by what went wrong. All derive from DriverError."""

from __future__ import annotations


class DriverError(Exception):
    """Base class of every driver error; `device` names the device that raised it."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device


class DriverConfigError(DriverError):
    """The configuration given to a driver is invalid (names the field)."""


class UnknownDriverError(DriverConfigError):
    """A cell file names a driver that no module registered (`device` is the field, e.g.
    `hand.driver`)."""


class LifecycleTransitionError(DriverError):
    """A lifecycle call came in a state that does not allow it (e.g. apply before activate)."""


class DeviceNotReadyError(DriverError):
    """The device did not answer its handshake in time while configuring or activating."""


class DeviceLostError(DriverError):
    """The device stopped answering or its link closed while active (process died, port gone)."""


class TargetShapeError(DriverError):
    """Targets given to the hand do not have one finite value per actuator."""
