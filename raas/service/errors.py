"""Every refusal the service gives, named by what went wrong. Each maps to one HTTP status and
a stable machine-readable `error` code in the JSON body: {"detail": "...", "error": "..."}."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.__doc__ or self.code)
        self.detail = detail or (self.__doc__ or self.code).strip()
        self.headers = headers or {}


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


class TooManyLogins(ServiceError):
    """Too many failed logins for this account: wait for the time in Retry-After."""

    status_code = 429
    code = "too_many_logins"


class OffGranularity(ServiceError):
    """Bookings start and end on the robot's time grid (whole minutes unless set otherwise)."""

    status_code = 422
    code = "off_granularity"


class BookingTooShort(ServiceError):
    """The booking is shorter than this robot's minimum."""

    status_code = 422
    code = "booking_too_short"


class BookingTooLong(ServiceError):
    """The booking is longer than this robot allows for your role."""

    status_code = 422
    code = "booking_too_long"


class BufferConflict(ServiceError):
    """The booking leaves less than the robot's buffer (reset, cool-down) to a neighbour."""

    status_code = 409
    code = "buffer_conflict"


class IdempotencyKeyReused(ServiceError):
    """This Idempotency-Key was already used for a different request."""

    status_code = 422
    code = "idempotency_key_reused"


class ReservationTooShortForLease(ServiceError):
    """The reservation holds no whole second a lease could cover (a row from an old version)."""

    status_code = 409
    code = "reservation_too_short"


class SeriesConflict(ServiceError):
    """Some occurrences of the recurring booking are refused; nothing was booked."""

    status_code = 409
    code = "series_conflict"

    def __init__(self, detail: str, occurrences: list[dict[str, object]]) -> None:
        super().__init__(detail)
        self.occurrences = occurrences


class InvalidBookingRules(ServiceError):
    """The robot's booking rules contradict each other."""

    status_code = 422
    code = "invalid_booking_rules"


class UnknownRobot(ServiceError):
    """No robot by that name; the detail lists the names you can see."""

    status_code = 404
    code = "unknown_robot"


class RobotOffline(ServiceError):
    """The robot's daemon has not sent a heartbeat within the heartbeat timeout."""

    status_code = 409
    code = "robot_offline"


class NoCurrentBooking(ServiceError):
    """You hold no booking of this robot that is running now; the detail says when your next
    one starts."""

    status_code = 409
    code = "no_current_booking"


class RobotNotRegistered(ServiceError):
    """The robot's daemon has not registered its endpoints yet (an older daemon, or none)."""

    status_code = 409
    code = "robot_not_registered"


# -- evaluation jobs and the bundle store (docs/fleet.md, "Evaluation jobs") ------------------


class BundleNotFound(ServiceError):
    """No bundle with that sha256 is stored: upload it first (PUT /bundles/{sha256})."""

    status_code = 404
    code = "bundle_not_found"


class BundleHashMismatch(ServiceError):
    """The uploaded bytes' sha256 is not the one in the path: nothing was stored."""

    status_code = 422
    code = "bundle_hash_mismatch"


class BundleTooLarge(ServiceError):
    """The upload is larger than the service stores (settings.max_bundle_bytes)."""

    status_code = 413
    code = "bundle_too_large"


class JobUnknownRobot(UnknownRobot):
    """The job names a robot that does not exist; the detail lists the robots there are."""

    status_code = 422


class NoQualifyingRobot(ServiceError):
    """No robot has the hand model the job asks for."""

    status_code = 422
    code = "no_qualifying_robot"


class StaleAttempt(ServiceError):
    """This attempt of the job is over (requeued after a claim timeout, finished or cancelled):
    its results are refused."""

    status_code = 409
    code = "stale_attempt"


class JobNotActive(ServiceError):
    """The job is already over (succeeded, failed, cancelled or expired)."""

    status_code = 409
    code = "job_not_active"


class EpisodeOutOfRange(ServiceError):
    """The episode index is not one of the job's episodes (0 .. episodes - 1)."""

    status_code = 422
    code = "episode_out_of_range"


class RecordingNotFound(ServiceError):
    """No recording is stored for that episode (or under that sha256)."""

    status_code = 404
    code = "recording_not_found"
