"""Request and response bodies: XCreate (input), XUpdate (partial input), XPublic (output)."""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import zmq.utils.z85
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from raas.service.models import JobStatus, ReservationStatus, RobotStatus, Role

MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2999, 12, 31, tzinfo=UTC)


#: What a time in a request looks like: ISO 8601 / RFC 3339 with a date, a time and a zone.
ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})$"
)
TIME_HINT = "an ISO 8601 string with a zone, e.g. 2026-11-23T09:00:00Z"


def _iso_string(value: object) -> object:
    """Times arrive as ISO 8601 strings with a zone; numbers (epoch seconds?) are refused."""
    if isinstance(value, datetime):  # Python callers (crud, tests) pass datetimes
        return value
    if not isinstance(value, str):
        raise ValueError(f"time must be {TIME_HINT}, not {type(value).__name__}")
    if not ISO_TIME.match(value):
        raise ValueError(f"time must be {TIME_HINT}")
    return value


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


UTCTime = Annotated[datetime, Strict(False), BeforeValidator(_iso_string), AfterValidator(_utc)]
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


class _Request(BaseModel):
    """A request body: strict types (`true` is not 1, `"5"` is not 5, a number is not a time)
    and no unknown fields (a misspelt field is refused, not silently dropped)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class _Report(BaseModel):
    """A daemon's report: strict types, but unknown fields are ignored, so a newer daemon
    may report more than this service keeps."""

    model_config = ConfigDict(strict=True, extra="ignore")


RoleIn = Annotated[Role, Strict(False)]
RobotStatusIn = Annotated[RobotStatus, Strict(False)]


class ErrorPublic(BaseModel):
    """Every refusal the service gives (validation errors aside): a message and a stable code."""

    detail: str
    error: str


def refusal(description: str) -> dict[str, Any]:
    """A refusal in a route's `responses=`: `{detail, error}`, its `error` codes (and when) in
    the description (raas/service/openapi.py adds the ones every route of a kind may answer)."""
    return {"model": ErrorPublic, "description": description}


class FieldError(BaseModel):
    """One field at fault in a refused body (`input` left out for passwords and tokens)."""

    type: str
    loc: list[str | int]
    msg: str
    input: object | None = None


class InvalidRequestPublic(BaseModel):
    """422 invalid_request: the body or a parameter is malformed."""

    detail: list[FieldError]
    error: Literal["invalid_request"]


class OccurrenceRefusal(BaseModel):
    starts_at: datetime
    ends_at: datetime
    error: str | None
    detail: str | None


class SeriesConflictPublic(ErrorPublic):
    """409 series_conflict: each week's fate (error null: it would have fitted)."""

    occurrences: list[OccurrenceRefusal]


# -- users ---------------------------------------------------------------------------------


class UserCreate(_Request):
    email: Email
    name: Name
    role: RoleIn = Role.researcher
    password: Password | None = None


class UserUpdate(_Request):
    name: Name | None = None
    role: RoleIn | None = None
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


class LoginRequest(_Request):
    email: Annotated[str, StringConstraints(max_length=254), AfterValidator(_printable)]
    password: Annotated[str, StringConstraints(max_length=200), AfterValidator(_printable)]


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserPublic


class TokenCreate(_Request):
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


#: A booking rule in seconds: up to a year.
RuleSeconds = Annotated[int, Field(ge=1, le=366 * 86_400)]


#: The robot's live dashboard: an http(s) address ("" for none).
DashboardUrl = Annotated[
    str, StringConstraints(max_length=500, pattern=r"^(https?://[^\s<>\"]+)?$")
]


class BookingRulesPublic(BaseModel):
    """The rules in force for this robot (its own values, else the service defaults)."""

    granularity_s: int
    min_s: int
    #: Longest booking for researchers / for staff and admins (null: no limit).
    max_s: int | None
    staff_max_s: int | None
    buffer_s: int


class RobotCreate(_Request):
    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    ]
    kind: Name
    endpoint: Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)] = ""
    status: RobotStatusIn = RobotStatus.available
    #: PEM of the public key the robot's daemon trusts; defaults to the service's signing key.
    lease_public_key: Text | None = None
    #: The robot's live dashboard (metrics exporter), linked from the booking page.
    dashboard_url: DashboardUrl | None = None
    #: Booking rules in seconds (null: the service default; PATCH with null returns to it).
    booking_granularity_s: RuleSeconds | None = None
    min_booking_s: RuleSeconds | None = None
    max_booking_s: RuleSeconds | None = None
    staff_max_booking_s: RuleSeconds | None = None
    buffer_s: Annotated[int, Field(ge=0, le=86_400)] | None = None


class RobotUpdate(_Request):
    kind: Name | None = None
    endpoint: (
        Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)] | None
    ) = None
    status: RobotStatusIn | None = None
    lease_public_key: Text | None = None
    #: The robot's live dashboard (metrics exporter), linked from the booking page.
    dashboard_url: DashboardUrl | None = None
    #: Booking rules in seconds (null: the service default; PATCH with null returns to it).
    booking_granularity_s: RuleSeconds | None = None
    min_booking_s: RuleSeconds | None = None
    max_booking_s: RuleSeconds | None = None
    staff_max_booking_s: RuleSeconds | None = None
    buffer_s: Annotated[int, Field(ge=0, le=86_400)] | None = None


Z85Key = Annotated[str, StringConstraints(pattern=r"^([0-9A-Za-z.:+=^!/*?&<>()\[\]{}@%$#-]{40})?$")]
Endpoint = Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)]


class DeviceEntry(BaseModel):
    """One device of the robot's cell file: its key ("hand", "cameras.left") and driver."""

    model_config = ConfigDict(strict=True, extra="ignore")
    key: Name
    driver: Name


class DirectoryReport(_Report):
    """What a daemon registers in the robot directory (sent in every heartbeat)."""

    control_endpoint: Endpoint
    stream_endpoint: Endpoint = ""
    #: The daemon's CurveZMQ server public key (Z85, 40 characters); "" for a plain robot.
    server_public_key: Z85Key = ""
    hand_model: Name
    devices: Annotated[list[DeviceEntry], Field(max_length=64)] = []
    capabilities: Annotated[list[Name], Field(max_length=64)] = []


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
    #: The last structured health report the daemon sent (None before the first).
    health_report: HealthReport | None = None
    health_checked_at: datetime | None = None
    #: The supervisor state and reason code the daemon last reported ("" before any report).
    safety_state: str = ""
    safety_reason: str = ""
    safety_at: datetime | None = None
    #: True from a REST e-stop until staff clear it (POST /robots/{id}/clear-estop).
    estop_latched: bool = False
    #: Maintenance alerts: actuators past a wear threshold since their last reset.
    wear_alerts: list[str] = []
    #: The robot's live dashboard ("" when not set).
    dashboard_url: str = ""
    #: Booking rules in force (grid, shortest and longest booking, buffer between bookings).
    booking_rules: BookingRulesPublic | None = None
    #: The robot directory, as the daemon last registered it ("" / [] before it registered).
    control_endpoint: str = ""
    stream_endpoint: str = ""
    server_public_key: str = ""
    hand_model: str = ""
    devices: list[DeviceEntry] = []
    capabilities: list[str] = []
    registered_at: datetime | None = None
    #: Seconds since the last heartbeat (None before the first).
    heartbeat_age_s: float | None = None


SafetyStateName = Literal["idle", "armed", "running", "hold", "ramp_down", "fault"]
Code = Annotated[str, StringConstraints(max_length=100, pattern=r"^[A-Za-z0-9_.:-]*$")]
ActuatorName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
#: Cumulative counters are finite and non-negative (NaN and infinities are refused with 422).
Counter = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
MAX_ACTUATORS = 64
MAX_HEALTH_CHECKS = 200


class SafetyReport(_Report):
    state: SafetyStateName
    reason: Code = ""


class ActuatorTotals(_Report):
    """Cumulative since the daemon's counter file was created (never decreasing)."""

    travel_rad: Counter = 0.0
    load_s: Counter = 0.0
    #: max |effort| / force limit (0..~1.2).
    peak_effort: Counter = 0.0
    hours_run: Counter = 0.0


class WearReport(_Report):
    actuators: Annotated[dict[ActuatorName, ActuatorTotals], Field(max_length=MAX_ACTUATORS)]


class HealthCheckResult(_Report):
    name: Name
    ok: bool
    detail: Text = ""


class HealthReport(_Report):
    ok: bool
    at: UTCTime | None = None
    checks: Annotated[list[HealthCheckResult], Field(max_length=MAX_HEALTH_CHECKS)] = []


class Heartbeat(_Report):
    status: RobotStatusIn = RobotStatus.available
    #: Result of the post-session health check, when one ran: False blocks new bookings.
    health_ok: bool | None = None
    note: Text = ""
    #: Optional, from a daemon with a supervisor: its state and the reason code.
    safety: SafetyReport | None = None
    #: Optional: per-actuator wear totals.
    wear: WearReport | None = None
    #: Optional: the structured post-session health report; when given it decides `health_ok`
    #: and the note names the failed checks.
    health: HealthReport | None = None
    #: Optional: the daemon's directory entry (endpoints, server key, hand, devices).
    directory: DirectoryReport | None = None

    @model_validator(mode="after")
    def _health_decides(self) -> Heartbeat:
        if self.health is not None:
            self.health_ok = self.health.ok
            failed = [c for c in self.health.checks if not c.ok]
            if failed:
                named = "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in failed)
                self.note = f"health check failed: {named}"[:2000]
            elif not self.health.ok:
                self.note = self.note or "health check failed"
        return self


class CommandNote(_Request):
    note: Text = ""


class CommandAccepted(BaseModel):
    seq: int


class CommandPublic(_Public):
    seq: int
    kind: Literal["estop", "clear_estop"]
    by: str
    at: datetime
    note: str


class CommandBatch(BaseModel):
    robot_id: int
    #: Pass this back as `since` to continue.
    cursor: int
    #: The newest seq of this robot's feed (a fresh follower starts here to skip history).
    head: int
    #: True while a REST e-stop is latched (not yet cleared by staff).
    latched: bool
    commands: list[CommandPublic]


Threshold = Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)]


class WearThresholdsUpdate(_Request):
    """A robot's thresholds; a null (or missing) field uses the service default."""

    travel_rad: Threshold | None = None
    load_s: Threshold | None = None
    peak_effort: Threshold | None = None
    hours_run: Threshold | None = None


class WearThresholdsPublic(BaseModel):
    """The thresholds in force (None: no threshold for that metric)."""

    travel_rad: float | None
    load_s: float | None
    peak_effort: float | None
    hours_run: float | None


class ActuatorWearPublic(BaseModel):
    """Wear since the last reset (peak_effort: the largest new peak reported since)."""

    travel_rad: float
    load_s: float
    peak_effort: float
    hours_run: float
    reset_at: datetime | None
    updated_at: datetime


class WearPublic(BaseModel):
    robot_id: int
    actuators: dict[str, ActuatorWearPublic]
    thresholds: WearThresholdsPublic
    alerts: list[str]


class WearReset(_Request):
    #: Actuators to reset; "all", null or missing resets every actuator of the robot.
    actuators: (
        Annotated[list[ActuatorName], Field(max_length=MAX_ACTUATORS)] | Literal["all"] | None
    ) = None
    note: Text = ""


RobotPublic.model_rebuild()


class HealthClear(_Request):
    note: Text = ""


class BusyInterval(BaseModel):
    starts_at: datetime
    ends_at: datetime
    #: `job`: a claimed evaluation job holds the robot (until its attempt ends or its hold does).
    kind: Literal["reservation", "maintenance", "job"]


class Availability(BaseModel):
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    bookable: bool
    busy: list[BusyInterval]


# -- reservations --------------------------------------------------------------------------


class ReservationCreate(_Request):
    robot_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    starts_at: UTCTime
    ends_at: UTCTime
    purpose: Text = ""


class ReservationSeriesCreate(_Request):
    """A weekly booking: the first occurrence and how many weeks in all."""

    robot_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    starts_at: UTCTime
    ends_at: UTCTime
    purpose: Text = ""
    #: Occurrences, one a week at the same wall-clock time in the lab's time zone.
    weeks: Annotated[int, Field(ge=1, le=52)]
    #: `all`: book every occurrence or none (409 series_conflict lists the refused ones);
    #: `available`: book those that fit and report the rest.
    mode: Literal["all", "available"] = "all"


class ReservationUpdate(_Request):
    """Change the purpose (holder) and/or move the booking (holder or staff): a move is
    checked like a new booking; the booking's leases are revoked and reissued."""

    purpose: Text | None = None
    starts_at: UTCTime | None = None
    ends_at: UTCTime | None = None


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
    #: Grows with every move and the cancellation.
    revision: int = 0
    #: Shared by the occurrences of one recurring booking (POST /reservations/series).
    series_id: str | None = None


class LeasePublic(BaseModel):
    token: str
    jti: str
    robot: str
    scope: str
    not_before: datetime
    expires_at: datetime


class ReservationMoved(ReservationPublic):
    #: Leases reissued for the new times (one per lease the move revoked, same holder and scope).
    reissued_leases: list[LeasePublic] = []


class OccurrencePublic(BaseModel):
    starts_at: datetime
    ends_at: datetime
    #: The booking made (None when refused).
    reservation: ReservationPublic | None
    #: Why it was refused: the `error` code and `detail` a single booking would get.
    error: str | None
    detail: str | None


class SeriesPublic(BaseModel):
    series_id: str
    booked: int
    refused: int
    occurrences: list[OccurrencePublic]


class RobotConnection(BaseModel):
    """What a client needs to reach a robot by name: the directory entry (with the server key,
    pinned from this authenticated answer) and a control lease for the caller's current booking."""

    robot: RobotPublic
    lease: LeasePublic
    reservation_id: int


class LeaseRequest(_Request):
    scope: Literal["control", "observe"] = "control"


# -- maintenance, quotas, revocations, audit -----------------------------------------------


class MaintenanceCreate(_Request):
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


class QuotaUpdate(_Request):
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
    #: The booking of the revoked lease; null for an evaluation job's lease (then `job_id`).
    reservation_id: int | None
    job_id: int | None = None
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


# -- evaluation jobs (docs/fleet.md, "Evaluation jobs") ----------------------------------------

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _port_in_range(value: str) -> str:
    if not 1 <= int(value.rpartition(":")[2]) <= 65535:
        raise ValueError("the port must be 1..65535")
    return value


def _z85(value: str) -> str:
    try:
        zmq.utils.z85.decode(value.encode("ascii"))
    except (ValueError, KeyError, UnicodeEncodeError, OverflowError, struct.error):
        raise ValueError("not a Z85 key (40 characters of the Z85 alphabet)") from None
    return value


JobStatusIn = Annotated[JobStatus, Strict(False)]
Seconds = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]


class BlobStored(BaseModel):
    """A stored bundle or recording."""

    sha256: str
    size: int
    #: False when the bundle was already stored (200) rather than stored now (201).
    created: bool


#: A policy server's address as the robot dials it: tcp://HOST:PORT (a host, not `*`).
PolicyEndpoint = Annotated[
    str,
    StringConstraints(max_length=300, pattern=r"^tcp://[^\s*/]+:([1-9][0-9]{0,4})$"),
    AfterValidator(_port_in_range),
]
#: A CurveZMQ public key: 40 characters of Z85.
CurveKey = Annotated[
    str,
    StringConstraints(
        min_length=40, max_length=40, pattern=r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$"
    ),
    AfterValidator(_z85),
]


class PolicyServerSpec(_Request):
    """A policy server the robot dials for each episode (`serve` with `dial`; docs/protocol.md,
    Policy servers): where, its public key (not a secret), the chunk size and the blend."""

    endpoint: PolicyEndpoint
    server_key: CurveKey
    horizon: Annotated[int, Field(ge=1, le=1000)] = 16
    blend: Literal["newest", "exponential"] = "newest"


class JobCreate(_Request):
    #: The policy: a stored bundle, or a policy server (exactly one of the two).
    bundle_sha256: Sha256 | None = None
    policy_server: PolicyServerSpec | None = None
    task: Literal["reorientation"] = "reorientation"
    episodes: Annotated[int, Field(ge=1, le=1000)]
    #: Run on this robot only (its name); or `hand_model`: any robot with that hand; neither:
    #: any robot.
    robot: Name | None = None
    hand_model: Name | None = None
    #: 0..10, higher first; above 5 is for staff.
    priority: Annotated[int, Field(ge=0, le=10)] = 5
    #: A job still queued at its deadline expires (a running one finishes).
    deadline: UTCTime | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    #: Longest one episode may take (seconds); also what the claim's hold is estimated from.
    episode_timeout_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> JobCreate:
        if self.robot is not None and self.hand_model is not None:
            raise ValueError("name a robot or a hand_model, not both")
        if (self.bundle_sha256 is None) == (self.policy_server is None):
            raise ValueError(
                "name the policy: bundle_sha256 (an uploaded bundle) or policy_server "
                "({endpoint, server_key}), exactly one of the two"
                + (", not both" if self.policy_server is not None else "")
            )
        return self


class EpisodePublic(BaseModel):
    index: int
    attempt: int
    #: The robot that ran it.
    robot: str
    successes: int
    end_reason: str
    cycles: int
    seconds: float
    safety_stop: bool
    safety_reason: str
    #: `GET /jobs/{id}/episodes/{index}/recording` serves it when set.
    recording_sha256: str | None
    recorded_at: datetime
    #: The rest of the worker's report: timing, seconds_per_goal, session_id, safety_detail.
    detail: dict[str, object]


class PolicyServerPublic(BaseModel):
    endpoint: str
    #: The policy server's CurveZMQ public key (Z85).
    server_key: str
    horizon: int
    blend: str


class JobPublic(BaseModel):
    id: int
    user_id: int
    #: The submitter's email.
    user: str
    #: The bundle it runs, or null when it names a policy server.
    bundle_sha256: str | None
    #: The policy server the robot dials for each episode, or null when it runs a bundle.
    policy_server: PolicyServerPublic | None = None
    task: str
    episodes: int
    episodes_done: int
    robot: str | None
    hand_model: str | None
    priority: int
    deadline: datetime | None
    seed: int
    episode_timeout_s: float | None
    status: JobStatus
    #: Number of the current (or last) attempt; 0 before the first claim.
    attempt: int
    #: Name of the robot running it now (null unless running).
    claimed_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    message: str
    results: list[EpisodePublic]


class JobEventPublic(BaseModel):
    seq: int
    at: datetime
    #: submitted, claimed, episode, requeued, interrupted, finished, cancelled, expired
    kind: str
    message: str
    data: dict[str, object]


class JobClaimed(BaseModel):
    """What a robot's job worker gets from a claim: the job, the attempt to report under, the
    end of its hold on the robot, a control lease valid until then, and where to reach the
    robot (its directory entry: control endpoint and CurveZMQ server key)."""

    job: JobPublic
    attempt: int
    hold_until: datetime
    lease: LeasePublic
    endpoint: str
    server_key: str


class JobHeartbeatPublic(BaseModel):
    #: Stop (finish `interrupted`) before this: it shrinks when a booking is made meanwhile.
    hold_until: datetime
    #: The job was cancelled: stop now (its lease is already revoked).
    cancel: bool


TimingKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class EpisodeReport(_Request):
    """One finished episode, from the run summary (`episodes[i]` of `run_done`)."""

    index: Annotated[int, Field(ge=0, le=999)]
    successes: Annotated[int, Field(ge=0, le=1_000_000)]
    end_reason: Code
    cycles: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    seconds: Seconds = 0.0
    seconds_per_goal: Annotated[list[Seconds], Field(max_length=10_000)] = []
    safety_stop: bool = False
    safety_reason: Code = ""
    safety_detail: Text = ""
    #: Where the episode's time went (e.g. reset_s, run_s, fetch_s), seconds.
    timing: Annotated[dict[TimingKey, Seconds], Field(max_length=32)] = {}
    #: The recording uploaded before with PUT .../episodes/{index}/recording.
    recording_sha256: Sha256 | None = None
    #: The daemon's session id of the run.
    session_id: Code = ""


class JobFinish(_Request):
    #: interrupted: stopped before the end (a booking ahead, an e-stop, the daemon gone):
    #: the job is queued again with its finished episodes kept.
    outcome: Literal["succeeded", "failed", "interrupted"]
    message: Text = ""
