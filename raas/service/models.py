"""Database tables (SQLAlchemy 2 declarative). The schema itself is owned by the Alembic
migrations in `raas/service/migrations`; these classes must match them (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes everywhere. SQLite keeps them as naive UTC text in one
    fixed format, so text comparison (used by the overlap trigger) is time comparison."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    researcher = "researcher"
    staff = "staff"
    admin = "admin"


class RobotStatus(StrEnum):
    available = "available"
    maintenance = "maintenance"
    offline = "offline"


class ReservationStatus(StrEnum):
    confirmed = "confirmed"
    cancelled = "cancelled"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('researcher', 'staff', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer credential: an API token, a login session, or a robot daemon's token.
    Only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: Set for a robot daemon's token: it acts for that robot only (heartbeat, revocations).
    robot_id: Mapped[int | None] = mapped_column(ForeignKey("robots.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # api | session | robot
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Robot(Base):
    __tablename__ = "robots"
    __table_args__ = (
        CheckConstraint("status IN ('available', 'maintenance', 'offline')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(100))
    endpoint: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default=RobotStatus.available.value)
    #: PEM of the Ed25519 public key the robot's daemon uses to verify leases.
    lease_public_key: Mapped[str] = mapped_column(Text)
    last_heartbeat_at: Mapped[datetime | None]
    #: Set when the daemon reports a failed post-session health check; blocks new bookings.
    health_blocked: Mapped[bool] = mapped_column(default=False)
    health_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The last structured health report (JSON of the heartbeat's `health`), "" when none.
    health_report: Mapped[str] = mapped_column(Text, default="", server_default="")
    health_checked_at: Mapped[datetime | None]
    #: The supervisor state and reason code the daemon last reported ("" before any).
    safety_state: Mapped[str] = mapped_column(String(20), default="", server_default="")
    safety_reason: Mapped[str] = mapped_column(String(100), default="", server_default="")
    safety_at: Mapped[datetime | None]
    #: True from a REST e-stop until staff clear it (the daemon latches on its own side too).
    estop_latched: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Address of the robot's live dashboard (the metrics exporter's page), "" when unknown.
    dashboard_url: Mapped[str] = mapped_column(String(500), default="", server_default="")
    #: Booking rules of this robot (seconds); NULL uses the service default (Settings).
    #: Starts and ends fall on multiples of the granularity (from midnight UTC).
    booking_granularity_s: Mapped[int | None]
    min_booking_s: Mapped[int | None]
    #: Longest booking a researcher may make; staff and admins have their own limit.
    max_booking_s: Mapped[int | None]
    staff_max_booking_s: Mapped[int | None]
    #: Free time kept between two bookings (reset, cool-down).
    buffer_s: Mapped[int | None]
    #: The robot directory (docs/fleet.md), as the daemon last registered it in a heartbeat:
    #: its control and stream endpoints, its CurveZMQ server public key (Z85, "" for a plain
    #: robot), its hand model, its devices (JSON [{key, driver}]) and capabilities (JSON list).
    control_endpoint: Mapped[str] = mapped_column(String(500), default="", server_default="")
    stream_endpoint: Mapped[str] = mapped_column(String(500), default="", server_default="")
    server_public_key: Mapped[str] = mapped_column(String(100), default="", server_default="")
    hand_model: Mapped[str] = mapped_column(String(100), default="", server_default="")
    devices: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    capabilities: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    registered_at: Mapped[datetime | None]


class Reservation(Base):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="positive_duration"),
        CheckConstraint("status IN ('confirmed', 'cancelled')", name="status"),
        Index("ix_reservations_robot_time", "robot_id", "starts_at", "ends_at"),
        Index("ix_reservations_idempotency", "user_id", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=ReservationStatus.confirmed.value)
    purpose: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    #: The client's `Idempotency-Key` of the create request (unique per user).
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    #: Grows with every change of the times or the status (the calendar feed's SEQUENCE).
    revision: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Set on every occurrence of one recurring booking request.
    series_id: Mapped[str | None] = mapped_column(String(32), index=True)


class MaintenanceBlock(Base):
    __tablename__ = "maintenance_blocks"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="positive_duration"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Quota(Base):
    """Per-user limits; a user without a row gets the defaults of their role."""

    __tablename__ = "quotas"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: Booked hours allowed per calendar week (Monday 00:00 UTC); None = unlimited.
    hours_per_week: Mapped[float | None]
    #: How far ahead a booking may end, in days; None = unlimited.
    max_days_ahead: Mapped[int | None]


class LoginThrottle(Base):
    """Failed logins per email (also emails of no account, so a lockout tells nothing)."""

    __tablename__ = "login_throttle"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class Lease(Base):
    __tablename__ = "leases"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The booking the lease belongs to, or NULL for a job's lease (then `job_attempt_id`).
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"), index=True)
    job_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("job_attempts.id"), index=True)
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    scope: Mapped[str] = mapped_column(String(20))
    not_before: Mapped[datetime]
    expires_at: Mapped[datetime]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    #: Id of the key that signed it (RFC 7638 thumbprint; NULL for leases before key ids).
    kid: Mapped[str | None] = mapped_column(String(64))


class Revocation(Base):
    """Append-only feed of revoked leases; `seq` is the cursor daemons resume from."""

    __tablename__ = "revocations"
    __table_args__ = (Index("ix_revocations_robot_seq", "robot_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"))
    jti: Mapped[str] = mapped_column(String(64))
    #: The booking of the revoked lease, or NULL for a job's lease (then `job_id`).
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    expires_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")


class CommandKind(StrEnum):
    estop = "estop"
    clear_estop = "clear_estop"


class RobotCommand(Base):
    """Append-only feed of operator commands (e-stop, clear) a robot's daemon follows;
    `seq` is the cursor, as in the revocation feed."""

    __tablename__ = "robot_commands"
    __table_args__ = (
        CheckConstraint("kind IN ('estop', 'clear_estop')", name="kind"),
        Index("ix_robot_commands_robot_seq", "robot_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"))
    kind: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: The issuer's email at the time (the feed shows it without a join).
    by: Mapped[str] = mapped_column(String(254))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ActuatorWear(Base):
    """Wear of one actuator: totals since the last staff reset, and the raw cumulative totals
    the daemon reported last (to turn each new report into an increment)."""

    __tablename__ = "actuator_wear"

    robot_id: Mapped[int] = mapped_column(
        ForeignKey("robots.id", ondelete="CASCADE"), primary_key=True
    )
    actuator: Mapped[str] = mapped_column(String(64), primary_key=True)
    travel_rad: Mapped[float] = mapped_column(default=0.0)
    load_s: Mapped[float] = mapped_column(default=0.0)
    peak_effort: Mapped[float] = mapped_column(default=0.0)
    hours_run: Mapped[float] = mapped_column(default=0.0)
    reported_travel_rad: Mapped[float] = mapped_column(default=0.0)
    reported_load_s: Mapped[float] = mapped_column(default=0.0)
    reported_peak_effort: Mapped[float] = mapped_column(default=0.0)
    reported_hours_run: Mapped[float] = mapped_column(default=0.0)
    #: Comma-separated metrics whose threshold this actuator crossed (alerted once each).
    alerted: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    reset_at: Mapped[datetime | None]


class WearThresholds(Base):
    """Staff-set wear thresholds of one robot; a NULL field uses the service default."""

    __tablename__ = "wear_thresholds"

    robot_id: Mapped[int] = mapped_column(
        ForeignKey("robots.id", ondelete="CASCADE"), primary_key=True
    )
    travel_rad: Mapped[float | None]
    load_s: Mapped[float | None]
    peak_effort: Mapped[float | None]
    hours_run: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    expired = "expired"


#: A job in one of these states is over: nothing changes it any more.
JOB_FINAL = frozenset(
    {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.expired}
)


class AttemptStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    #: Ended by its worker (booking ahead, e-stop, daemon gone) or by the claim timeout or the
    #: hold's end; the job went back to the queue.
    interrupted = "interrupted"
    cancelled = "cancelled"


class Job(Base):
    """An evaluation job: episodes of a policy on a robot that qualifies. The policy is an
    uploaded bundle (`bundle_sha256`) or a policy server the robot dials (`policy_endpoint`,
    `policy_server_key`, `policy_horizon`, `policy_blend`): exactly one of the two."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')",
            name="status",
        ),
        CheckConstraint("episodes >= 1", name="episodes"),
        CheckConstraint("(bundle_sha256 IS NULL) <> (policy_endpoint IS NULL)", name="one_policy"),
        Index("ix_jobs_status_priority", "status", "priority", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    #: A policy server the robot dials (`serve` with `dial`): tcp://HOST:PORT
    policy_endpoint: Mapped[str | None] = mapped_column(String(300))
    #: Its CurveZMQ public key (Z85; public, not a secret)
    policy_server_key: Mapped[str | None] = mapped_column(String(40))
    policy_horizon: Mapped[int | None]
    policy_blend: Mapped[str | None] = mapped_column(String(20))
    task: Mapped[str] = mapped_column(String(50))
    episodes: Mapped[int]
    #: The one robot that may run it (NULL: any robot of `hand_model`, or any robot).
    robot_id: Mapped[int | None] = mapped_column(ForeignKey("robots.id"))
    hand_model: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(default=5)
    deadline: Mapped[datetime | None]
    seed: Mapped[int] = mapped_column(default=0)
    episode_timeout_s: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued.value)
    #: Number of the current (or last) attempt; 0 before the first claim.
    attempt: Mapped[int] = mapped_column(default=0)
    #: The robot of the running attempt (NULL while queued).
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("robots.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    message: Mapped[str] = mapped_column(Text, default="")


class JobAttempt(Base):
    """One claim of a job by one robot: its hold on the robot's calendar and its lease."""

    __tablename__ = "job_attempts"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted', 'cancelled')",
            name="status",
        ),
        Index("ix_job_attempts_job_number", "job_id", "number", unique=True),
        Index("ix_job_attempts_robot_time", "robot_id", "claimed_at", "hold_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int]
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"))
    status: Mapped[str] = mapped_column(String(20), default=AttemptStatus.running.value)
    claimed_at: Mapped[datetime]
    #: The end of the hold; shrinks when a booking or maintenance is laid in front of it.
    hold_until: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    lease_jti: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")


class JobEpisode(Base):
    """The result of one finished episode (kept across requeues)."""

    __tablename__ = "job_episodes"
    __table_args__ = (Index("ix_job_episodes_job_index", "job_id", "index", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int]
    attempt: Mapped[int]
    robot_id: Mapped[int] = mapped_column(ForeignKey("robots.id"))
    successes: Mapped[int]
    end_reason: Mapped[str] = mapped_column(String(100))
    cycles: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[float] = mapped_column(default=0.0)
    safety_stop: Mapped[bool] = mapped_column(default=False)
    safety_reason: Mapped[str] = mapped_column(String(100), default="")
    #: JSON of the run summary's extra fields (timing, seconds per goal, session id).
    detail: Mapped[str] = mapped_column(Text, default="{}")
    recording_sha256: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    """The job's log: submitted, claimed, episode, requeued, finished, cancelled, expired,
    interrupted. `seq` orders the events of all jobs."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_seq", "job_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    #: JSON object of details (attempt, robot, episode index ...).
    data: Mapped[str] = mapped_column(Text, default="{}")
