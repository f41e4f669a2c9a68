"""Every refusal the service gives, named by what went wrong. Each maps to one HTTP status and
a stable machine-readable `error` code in the JSON body: {"detail": "...", "error": "..."}."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.__doc__ or self.code)
        self.detail = detail or (self.__doc__ or self.code).strip()


class NotAuthenticated(ServiceError):
    """No valid credentials: log in or send a bearer token."""

    status_code = 401
    code = "not_authenticated"


class InvalidCredentials(ServiceError):
    """Wrong email or password."""

    status_code = 401
    code = "invalid_credentials"


class TokenExpired(ServiceError):
    """The token has expired."""

    status_code = 401
    code = "token_expired"


class TokenRevoked(ServiceError):
    """The token has been revoked."""

    status_code = 401
    code = "token_revoked"


class Forbidden(ServiceError):
    """Your role does not allow this."""

    status_code = 403
    code = "forbidden"


class QuotaExceeded(ServiceError):
    """The booking would exceed your weekly hours."""

    status_code = 403
    code = "quota_exceeded"


class TooFarAhead(ServiceError):
    """The booking ends further ahead than your quota allows."""

    status_code = 403
    code = "too_far_ahead"


class NotFound(ServiceError):
    """No such object (or not one you may see)."""

    status_code = 404
    code = "not_found"


class ReservationConflict(ServiceError):
    """The robot is already booked for part of that time."""

    status_code = 409
    code = "reservation_conflict"


class MaintenanceConflict(ServiceError):
    """The robot is under maintenance for part of that time."""

    status_code = 409
    code = "maintenance_conflict"


class RobotNotBookable(ServiceError):
    """The robot is in maintenance or blocked after a failed health check."""

    status_code = 409
    code = "robot_not_bookable"


class ReservationNotActive(ServiceError):
    """The reservation is cancelled or over."""

    status_code = 409
    code = "reservation_not_active"


class AlreadyExists(ServiceError):
    """An object with that unique name already exists."""

    status_code = 409
    code = "already_exists"


class InvalidTimeRange(ServiceError):
    """The time range is empty, reversed or in the past."""

    status_code = 422
    code = "invalid_time_range"


class TooManyActuators(ServiceError):
    """The wear report names more actuators than the service keeps per robot."""

    status_code = 422
    code = "too_many_actuators"


class LastAdmin(ServiceError):
    """The change would leave the lab without an active admin (nobody could manage users)."""

    status_code = 409
    code = "last_admin"
