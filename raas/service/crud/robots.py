"""Robots: records, heartbeats, health blocks, availability."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from raas.service.booking_rules import BookableRobot, rules_for
from raas.service.crud import directory
from raas.service.crud import wear as wear_crud
from raas.service.errors import AlreadyExists, InvalidBookingRules, NotFound
from raas.service.models import (
    JobAttempt,
    MaintenanceBlock,
    Reservation,
    ReservationStatus,
    Robot,
    RobotStatus,
)
from raas.service.schemas import (
    BookingRulesPublic,
    BusyInterval,
    HealthReport,
    Heartbeat,
    RobotCreate,
    RobotPublic,
    RobotUpdate,
)
from raas.service.settings import Settings


def get(db: Session, robot_id: int, *, lock: bool = False) -> Robot:
    """Fetch a robot; `lock` takes its row lock (PostgreSQL) so writers to one robot queue."""
    stmt = select(Robot).where(Robot.id == robot_id)
    if lock:
        stmt = stmt.with_for_update()
    robot = db.scalars(stmt).first()
    if robot is None:
        raise NotFound(f"no robot {robot_id}")
    return robot


def list_robots(db: Session) -> list[Robot]:
    return list(db.scalars(select(Robot).order_by(Robot.id)))


def bookable(robot: BookableRobot) -> bool:
    return robot.status != RobotStatus.maintenance.value and not robot.health_blocked


def public(db: Session, robot: Robot, now: datetime, settings: Settings) -> RobotPublic:
    heartbeat_timeout = timedelta(seconds=settings.heartbeat_timeout_s)
    online = robot.last_heartbeat_at is not None and now - robot.last_heartbeat_at <= (
        heartbeat_timeout
    )
    age = (
        None
        if robot.last_heartbeat_at is None
        else round(max(0.0, (now - robot.last_heartbeat_at).total_seconds()), 3)
    )
    limits = wear_crud.thresholds(db, robot.id, settings)
    return RobotPublic(
        id=robot.id,
        name=robot.name,
        kind=robot.kind,
        endpoint=robot.endpoint,
        status=RobotStatus(robot.status),
        online=online,
        last_heartbeat_at=robot.last_heartbeat_at,
        health_blocked=robot.health_blocked,
        health_note=robot.health_note,
        lease_public_key=robot.lease_public_key,
        bookable=bookable(robot),
        health_report=(
            HealthReport.model_validate_json(robot.health_report) if robot.health_report else None
        ),
        health_checked_at=robot.health_checked_at,
        safety_state=robot.safety_state,
        safety_reason=robot.safety_reason,
        safety_at=robot.safety_at,
        estop_latched=robot.estop_latched,
        wear_alerts=wear_crud.alerts(db, robot.id, limits),
        dashboard_url=robot.dashboard_url,
        booking_rules=booking_rules(robot, settings),
        control_endpoint=robot.control_endpoint,
        stream_endpoint=robot.stream_endpoint,
        server_public_key=robot.server_public_key,
        hand_model=robot.hand_model,
        devices=directory.devices(robot),
        capabilities=directory.capabilities(robot),
        registered_at=robot.registered_at,
        heartbeat_age_s=age,
    )


RULE_FIELDS = (
    "booking_granularity_s",
    "min_booking_s",
    "max_booking_s",
    "staff_max_booking_s",
    "buffer_s",
)


def booking_rules(robot: Robot, settings: Settings) -> BookingRulesPublic:
    researcher = rules_for(robot, settings, staff=False)
    staff = rules_for(robot, settings, staff=True)
    return BookingRulesPublic(
        granularity_s=researcher.granularity_s,
        min_s=researcher.min_s,
        max_s=researcher.max_s,
        staff_max_s=staff.max_s,
        buffer_s=researcher.buffer_s,
    )


def _set_rules(robot: Robot, data: RobotCreate | RobotUpdate, settings: Settings | None) -> None:
    """Rule fields given in the body (null included: back to the default) are stored, and the
    rules then in force (the robot's merged with the body, the service's defaults for what
    neither sets) must agree: the minimum a multiple of the grid. A default minimum below the
    grid is lifted to one grid step (booking_rules.rules_for); a robot's own is not."""
    for name in RULE_FIELDS:
        if name in data.model_fields_set:
            setattr(robot, name, getattr(data, name))
    granularity, minimum = robot.booking_granularity_s, robot.min_booking_s
    if settings is not None:
        granularity = granularity or settings.booking_granularity_s
        if minimum is None:
            minimum = max(settings.min_booking_s, granularity)
    if granularity and minimum and minimum % granularity:
        own = "" if robot.min_booking_s is not None else " (the service default)"
        raise InvalidBookingRules(
            f"min_booking_s {minimum}{own} is not a multiple of booking_granularity_s {granularity}"
        )


def create(
    db: Session,
    data: RobotCreate,
    default_public_key: str,
    now: datetime,
    settings: Settings | None = None,
) -> Robot:
    robot = Robot(
        name=data.name,
        kind=data.kind,
        endpoint=data.endpoint,
        status=data.status.value,
        lease_public_key=data.lease_public_key or default_public_key,
        dashboard_url=data.dashboard_url or "",
        health_blocked=False,
        health_note="",
        created_at=now,
    )
    _set_rules(robot, data, settings)
    db.add(robot)
    try:
        db.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"a robot named {data.name!r} exists") from exc
    return robot


def update(db: Session, robot: Robot, data: RobotUpdate, settings: Settings | None = None) -> Robot:
    if data.kind is not None:
        robot.kind = data.kind
    if data.endpoint is not None:
        robot.endpoint = data.endpoint
    if data.status is not None:
        robot.status = data.status.value
    if data.lease_public_key is not None:
        robot.lease_public_key = data.lease_public_key
    if data.dashboard_url is not None:
        robot.dashboard_url = data.dashboard_url
    _set_rules(robot, data, settings)
    db.flush()
    return robot


def heartbeat(db: Session, robot: Robot, beat: Heartbeat, now: datetime) -> bool:
    """Record a heartbeat; returns True when it newly blocked the robot (failed health check).

    A structured `health` report is applied once: the daemon repeats its latest report in every
    heartbeat, and a report with the `at` of the one already stored changes nothing (so staff
    clearing a block is not undone by the next heartbeat)."""
    robot.last_heartbeat_at = now
    if beat.directory is not None:
        directory.register(robot, beat.directory, now)
    # A daemon may put its robot into maintenance (or report it offline) but not take it out of
    # maintenance: staff set `available` again (PATCH /robots/{id}).
    if robot.status != RobotStatus.maintenance.value:
        robot.status = beat.status.value
    if beat.safety is not None:
        robot.safety_state = beat.safety.state
        robot.safety_reason = beat.safety.reason
        robot.safety_at = now
    health_ok = beat.health_ok
    if beat.health is not None:
        at = beat.health.at
        if at is not None and robot.health_checked_at is not None and at == robot.health_checked_at:
            health_ok = None  # the report already applied
        else:
            robot.health_report = beat.health.model_dump_json()
            robot.health_checked_at = at or now
    newly_blocked = health_ok is False and not robot.health_blocked
    if health_ok is False:
        robot.health_blocked = True
        robot.health_note = beat.note or "post-session health check failed"
    db.flush()
    return newly_blocked


def clear_health(db: Session, robot: Robot, note: str) -> Robot:
    robot.health_blocked = False
    robot.health_note = note
    db.flush()
    return robot


def busy(db: Session, robot_id: int, start: datetime, end: datetime) -> list[BusyInterval]:
    reservations = db.execute(
        select(Reservation.starts_at, Reservation.ends_at).where(
            Reservation.robot_id == robot_id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.starts_at < end,
            Reservation.ends_at > start,
        )
    ).all()
    blocks = db.execute(
        select(MaintenanceBlock.starts_at, MaintenanceBlock.ends_at).where(
            MaintenanceBlock.robot_id == robot_id,
            MaintenanceBlock.starts_at < end,
            MaintenanceBlock.ends_at > start,
        )
    ).all()
    # A job's hold: from the claim until the attempt ended, or until its hold ends.
    holds = db.execute(
        select(JobAttempt.claimed_at, JobAttempt.hold_until, JobAttempt.ended_at).where(
            JobAttempt.robot_id == robot_id,
            JobAttempt.claimed_at < end,
            JobAttempt.hold_until > start,
        )
    ).all()
    # Typed by the columns (UTC-aware datetimes), so built without validating again.
    make = BusyInterval.model_construct
    out = [make(starts_at=s, ends_at=e, kind="reservation") for s, e in reservations]
    out += [make(starts_at=s, ends_at=e, kind="maintenance") for s, e in blocks]
    for s, until, ended in holds:
        e = min(until, ended) if ended is not None else until
        if s < e and e > start:
            out.append(make(starts_at=s, ends_at=e, kind="job"))
    return sorted(out, key=lambda b: (b.starts_at, b.ends_at))
