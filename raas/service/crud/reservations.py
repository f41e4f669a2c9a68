"""Book, list and cancel reservations.

Booking runs inside one write transaction that already holds the lock before it reads:
BEGIN IMMEDIATE on SQLite (see db.py), the robot's and the user's row locks on PostgreSQL.
The application checks below give precise answers; the database rule (exclusion constraint /
trigger, see the initial migration) is what guarantees no double booking: a conflicting
insert that slipped past them fails with IntegrityError and becomes ReservationConflict.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from raas.service.crud import leases as lease_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import users as user_crud
from raas.service.errors import (
    InvalidTimeRange,
    MaintenanceConflict,
    NotFound,
    QuotaExceeded,
    ReservationConflict,
    ReservationNotActive,
    RobotNotBookable,
    TooFarAhead,
)
from raas.service.models import (
    MaintenanceBlock,
    Reservation,
    ReservationStatus,
    Revocation,
    User,
)
from raas.service.schemas import ReservationCreate

#: How far in the past a booking may start (a slot that began a moment ago is still bookable).
START_GRACE = timedelta(minutes=5)
WEEK = timedelta(days=7)


def week_start(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    day = t - timedelta(days=t.weekday())
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def hours_by_week(start: datetime, end: datetime) -> dict[datetime, float]:
    """Hours of [start, end) falling in each calendar week (weeks start Monday 00:00 UTC)."""
    out: dict[datetime, float] = {}
    w = week_start(start)
    while w < end:
        overlap = min(end, w + WEEK) - max(start, w)
        if overlap > timedelta(0):
            out[w] = overlap.total_seconds() / 3600.0
        w += WEEK
    return out


def get(db: Session, reservation_id: int, *, lock: bool = False) -> Reservation:
    stmt = select(Reservation).where(Reservation.id == reservation_id)
    if lock:
        stmt = stmt.with_for_update()
    reservation = db.scalars(stmt).first()
    if reservation is None:
        raise NotFound(f"no reservation {reservation_id}")
    return reservation


def list_reservations(
    db: Session,
    *,
    user_id: int | None,
    robot_id: int | None,
    status: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[Reservation]:
    stmt = select(Reservation)
    if user_id is not None:
        stmt = stmt.where(Reservation.user_id == user_id)
    if robot_id is not None:
        stmt = stmt.where(Reservation.robot_id == robot_id)
    if status is not None:
        stmt = stmt.where(Reservation.status == status)
    if start is not None:
        stmt = stmt.where(Reservation.ends_at > start)
    if end is not None:
        stmt = stmt.where(Reservation.starts_at < end)
    stmt = stmt.order_by(Reservation.starts_at, Reservation.id).limit(limit).offset(offset)
    return list(db.scalars(stmt))


def _check_quota(db: Session, user: User, start: datetime, end: datetime, now: datetime) -> None:
    limits = user_crud.limits(db, user)
    if limits.max_days_ahead is not None and end > now + timedelta(days=limits.max_days_ahead):
        raise TooFarAhead(f"bookings may end at most {limits.max_days_ahead} days ahead")
    if limits.hours_per_week is None:
        return
    wanted = hours_by_week(start, end)
    first, last = min(wanted), max(wanted) + WEEK
    booked: dict[datetime, float] = defaultdict(float)
    rows = db.execute(
        select(Reservation.starts_at, Reservation.ends_at).where(
            Reservation.user_id == user.id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.starts_at < last,
            Reservation.ends_at > first,
        )
    ).all()
    for s, e in rows:
        for w, h in hours_by_week(s, e).items():
            booked[w] += h
    for w, h in wanted.items():
        if booked[w] + h > limits.hours_per_week + 1e-9:
            raise QuotaExceeded(
                f"week of {w.date()}: {booked[w]:.2f} h booked + {h:.2f} h requested "
                f"> {limits.hours_per_week:g} h allowed"
            )


def create(db: Session, user: User, data: ReservationCreate, now: datetime) -> Reservation:
    start, end = data.starts_at, data.ends_at
    if end <= start:
        raise InvalidTimeRange("ends_at must be after starts_at")
    if start < now - START_GRACE:
        raise InvalidTimeRange("starts_at is in the past")
    # Lock order everywhere: robot, then user. On SQLite the write lock is already held.
    robot = robot_crud.get(db, data.robot_id, lock=True)
    db.scalars(select(User.id).where(User.id == user.id).with_for_update()).first()
    if not robot_crud.bookable(robot):
        raise RobotNotBookable(
            f"robot {robot.name} is blocked: {robot.health_note}"
            if robot.health_blocked
            else f"robot {robot.name} is in maintenance"
        )
    if db.scalars(
        select(MaintenanceBlock.id).where(
            MaintenanceBlock.robot_id == robot.id,
            MaintenanceBlock.starts_at < end,
            MaintenanceBlock.ends_at > start,
        )
    ).first():
        raise MaintenanceConflict()
    _check_quota(db, user, start, end, now)
    if db.scalars(
        select(Reservation.id).where(
            Reservation.robot_id == robot.id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.starts_at < end,
            Reservation.ends_at > start,
        )
    ).first():
        raise ReservationConflict()
    reservation = Reservation(
        robot_id=robot.id,
        user_id=user.id,
        starts_at=start,
        ends_at=end,
        status=ReservationStatus.confirmed.value,
        purpose=data.purpose,
        created_at=now,
        updated_at=now,
    )
    db.add(reservation)
    try:
        db.flush()
    except IntegrityError as exc:
        raise ReservationConflict("the robot is already booked for part of that time") from exc
    return reservation


def cancel(
    db: Session, reservation: Reservation, *, reason: str, now: datetime
) -> list[Revocation]:
    """Cancel a confirmed reservation that has not ended; revoke its leases."""
    if reservation.status != ReservationStatus.confirmed.value:
        raise ReservationNotActive(f"reservation {reservation.id} is already cancelled")
    if reservation.ends_at <= now:
        raise ReservationNotActive(f"reservation {reservation.id} has ended")
    reservation.status = ReservationStatus.cancelled.value
    reservation.cancelled_at = now
    reservation.cancel_reason = reason
    reservation.updated_at = now
    db.flush()
    return lease_crud.revoke_for_reservation(db, reservation, reason=reason, now=now)
