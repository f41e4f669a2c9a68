"""Request and response bodies: XCreate (input), XUpdate (partial input), XPublic (output)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from raas.service.models import ReservationStatus, RobotStatus, Role

MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2999, 12, 31, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("time must carry a timezone (e.g. a trailing Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time out of range") from exc
    if not MIN_TIME <= value <= MAX_TIME:
        raise ValueError("time out of range (2000..2999)")
    return value


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


UTCTime = Annotated[datetime, AfterValidator(_utc)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_printable)]
Text = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_printable)]
Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"),
    AfterValidator(_printable),
]
Password = Annotated[
    str, StringConstraints(min_length=8, max_length=200), AfterValidator(_printable)
]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- users ---------------------------------------------------------------------------------


class UserCreate(BaseModel):
    email: Email
    name: Name
    role: Role = Role.researcher
    password: Password | None = None


class UserUpdate(BaseModel):
    name: Name | None = None
    role: Role | None = None
    password: Password | None = None
    active: bool | None = None


class UserPublic(_Public):
    id: int
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime


# -- auth ----------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    email: Annotated[str, StringConstraints(max_length=254), AfterValidator(_printable)]
    password: Annotated[str, StringConstraints(max_length=200), AfterValidator(_printable)]


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserPublic


class TokenCreate(BaseModel):
    name: Name
    #: Days until the token expires; None for no expiry.
    expires_in_days: float | None = Field(default=90, gt=0, le=3650)


class TokenPublic(_Public):
    id: int
    name: str
    kind: str
    prefix: str
    robot_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    #: The secret: shown once, never stored.
    token: str


# -- robots --------------------------------------------------------------------------------


class RobotCreate(BaseModel):
    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    ]
    kind: Name
    endpoint: Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)] = ""
    status: RobotStatus = RobotStatus.available
    #: PEM of the public key the robot's daemon trusts; defaults to the service's signing key.
    lease_public_key: Text | None = None


class RobotUpdate(BaseModel):
    kind: Name | None = None
    endpoint: (
        Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)] | None
    ) = None
    status: RobotStatus | None = None
    lease_public_key: Text | None = None


class RobotPublic(_Public):
    id: int
    name: str
    kind: str
    endpoint: str
    #: Status as last set by staff or reported by the daemon.
    status: RobotStatus
    #: False when no heartbeat arrived within the heartbeat timeout.
    online: bool
    last_heartbeat_at: datetime | None
    health_blocked: bool
    health_note: str
    lease_public_key: str
    #: True when new bookings are accepted (status not maintenance, not health-blocked).
    bookable: bool


class Heartbeat(BaseModel):
    status: RobotStatus = RobotStatus.available
    #: Result of the post-session health check, when one ran: False blocks new bookings.
    health_ok: bool | None = None
    note: Text = ""


class HealthClear(BaseModel):
    note: Text = ""


class BusyInterval(BaseModel):
    starts_at: datetime
    ends_at: datetime
    kind: Literal["reservation", "maintenance"]


class Availability(BaseModel):
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    bookable: bool
    busy: list[BusyInterval]


# -- reservations --------------------------------------------------------------------------


class ReservationCreate(BaseModel):
    robot_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    starts_at: UTCTime
    ends_at: UTCTime
    purpose: Text = ""


class ReservationUpdate(BaseModel):
    purpose: Text | None = None


class ReservationPublic(_Public):
    id: int
    robot_id: int
    user_id: int
    starts_at: datetime
    ends_at: datetime
    status: ReservationStatus
    purpose: str
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None


class LeaseRequest(BaseModel):
    scope: Literal["control", "observe"] = "control"


class LeasePublic(BaseModel):
    token: str
    jti: str
    robot: str
    scope: str
    not_before: datetime
    expires_at: datetime


# -- maintenance, quotas, revocations, audit -----------------------------------------------


class MaintenanceCreate(BaseModel):
    robot_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    starts_at: UTCTime
    ends_at: UTCTime
    reason: Text = ""


class MaintenancePublic(_Public):
    id: int
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: int
    created_at: datetime
    #: Reservations this block cancelled (set on creation only).
    cancelled_reservations: list[int] = []


class QuotaUpdate(BaseModel):
    hours_per_week: Annotated[float, Field(ge=0, le=168)] | None = None
    max_days_ahead: Annotated[int, Field(ge=0, le=3650)] | None = None


class QuotaPublic(BaseModel):
    user_id: int
    hours_per_week: float | None
    max_days_ahead: int | None
    #: True when no quota row exists and these are the role's defaults.
    default: bool


class RevocationPublic(_Public):
    seq: int
    jti: str
    reservation_id: int
    expires_at: datetime
    reason: str
    revoked_at: datetime


class RevocationBatch(BaseModel):
    robot_id: int
    #: Pass this back as `since` to continue.
    cursor: int
    revocations: list[RevocationPublic]


class AuditPublic(_Public):
    id: int
    at: datetime
    actor_id: int | None
    action: str
    target: str
    detail: str
