"""Errors of the Dynamixel hand, named by what went wrong; each is one of raas_drivers' errors, so
the loop treats them as it treats any driver error (a lost device ends the run in a safe state)."""

from __future__ import annotations

from raas_drivers.errors import DeviceLostError, DriverConfigError


class CalibrationError(DriverConfigError):
    """The calibration file is missing, not TOML, or a field in it is wrong (names the field)."""


class ServoSilentError(DeviceLostError):
    """Servos stopped answering: `servo_ids` did not answer N sync reads in a row."""

    def __init__(self, device: str, message: str, servo_ids: tuple[int, ...]) -> None:
        super().__init__(device, message)
        self.servo_ids = servo_ids


class ServoHardwareError(DeviceLostError):
    """A servo reports a hardware error (its alert bit; Hardware Error Status names the cause).

    The X series switches its torque off on overheating, overload and electrical shock; the
    servo stays so until it is rebooted or power-cycled."""

    def __init__(self, device: str, message: str, servo_id: int, bits: int) -> None:
        super().__init__(device, message)
        self.servo_id = servo_id
        self.bits = bits
