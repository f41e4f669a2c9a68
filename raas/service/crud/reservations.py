"""Book, list and cancel reservations.

Booking runs inside one write transaction that already holds the lock before it reads:
BEGIN IMMEDIATE on SQLite (see db.py), the robot's and the user's row locks on PostgreSQL.
The application checks below give precise answers; the database rule (exclusion constraint /
trigger, see the initial migration) is what guarantees no double booking: a conflicting
insert that slipped past them fails with IntegrityError and becomes ReservationConflict.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from raas.service.booking_rules import (
    BookableRobot,
    BookingRules,
    RobotRow,
    check_shape,
    rules_for,
)
from raas.service.crud import leases as lease_crud
from raas.service.crud import robots as robot_crud
from raas.service.crud import users as user_crud
from raas.service.errors import (
    BufferConflict,
    IdempotencyKeyReused,
    InvalidTimeRange,
    MaintenanceConflict,
    NotFound,
    QuotaExceeded,
    ReservationConflict,
    ReservationNotActive,
    RobotNotBookable,
    SeriesConflict,
    ServiceError,
    TooFarAhead,
)
from raas.service.models import (
    MaintenanceBlock,
    Quota,
    Reservation,
    ReservationStatus,
    Revocation,
    Robot,
    Role,
    User,
    UTCDateTime,
)
from raas.service.schemas import ReservationCreate, ReservationSeriesCreate
from raas.service.settings import Settings

#: How far in the past a booking may start (a slot that began a moment ago is still bookable).
START_GRACE = timedelta(minutes=5)
WEEK = timedelta(days=7)


def week_start(t: datetime, zone: tzinfo = UTC) -> datetime:
    """The instant (UTC) the week holding `t` began: Monday 00:00 on the lab's wall clock."""
    local = t.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime.combine(monday, time(0), tzinfo=zone).astimezone(UTC)


def next_week(w: datetime, zone: tzinfo) -> datetime:
    monday = w.astimezone(zone).date() + WEEK
    return datetime.combine(monday, time(0), tzinfo=zone).astimezone(UTC)


def hours_by_week(start: datetime, end: datetime, zone: tzinfo = UTC) -> dict[datetime, float]:
    """Hours of [start, end) falling in each calendar week of the lab's time zone (keyed by the
    week's first instant; a week with a daylight-saving change has 167 or 169 hours)."""
    out: dict[datetime, float] = {}
    w = week_start(start, zone)
    while w < end:
        nxt = next_week(w, zone)
        overlap = min(end, nxt) - max(start, w)
        if overlap > timedelta(0):
            out[w] = overlap.total_seconds() / 3600.0
        w = nxt
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
    series_id: str | None = None,
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
    if series_id is not None:
        stmt = stmt.where(Reservation.series_id == series_id)
    stmt = stmt.order_by(Reservation.starts_at, Reservation.id).limit(limit).offset(offset)
    return list(db.scalars(stmt))


def is_staff_role(user: User) -> bool:
    return user.role in (Role.staff.value, Role.admin.value)


def _build_around(*, quota: bool, exclude: bool, ranges: bool) -> Executable:
    """One statement for everything a slot can collide with, each row tagged by its kind:
    'm' the robot's maintenance blocks overlapping [start, end), 'r' the robot's confirmed
    bookings overlapping [lo, hi) (the slot widened by the buffer), and with `quota` 'q' the
    user's confirmed bookings overlapping [q_lo, q_hi) (the weeks the slot touches); with
    `exclude` the booking `exclude_id` (one being moved) is left out. With `ranges`
    (PostgreSQL) the robot's bookings are found by range overlap, which the GiST index of the
    no-overlap exclusion constraint answers directly (`starts_at < hi AND ends_at > lo` on the
    btree index scans every earlier booking of the robot). Built once per variant
    (`_AROUND`): executing a built statement again skips SQLAlchemy's statement construction
    and cache-key generation."""
    m, r = MaintenanceBlock.__table__.c, Reservation.__table__.c
    confirmed = r.status == ReservationStatus.confirmed.value
    parts = [
        select(literal("m").label("kind"), m.starts_at, m.ends_at).where(
            m.robot_id == bindparam("robot_id"),
            m.starts_at < bindparam("end"),
            m.ends_at > bindparam("start"),
        ),
        select(literal("r"), r.starts_at, r.ends_at).where(
            r.robot_id == bindparam("robot_id"),
            confirmed,
            r.starts_at < bindparam("hi"),
            r.ends_at > bindparam("lo"),
            *(
                [
                    func.tstzrange(r.starts_at, r.ends_at, "[)").op("&&")(
                        func.tstzrange(
                            bindparam("lo", type_=UTCDateTime),
                            bindparam("hi", type_=UTCDateTime),
                            "[)",
                        )
                    )
                ]
                if ranges
                else []
            ),
            *([r.id != bindparam("exclude_id")] if exclude else []),
        ),
    ]
    if quota:
        parts.append(
            select(literal("q"), r.starts_at, r.ends_at).where(
                r.user_id == bindparam("user_id"),
                confirmed,
                r.starts_at < bindparam("q_hi"),
                r.ends_at > bindparam("q_lo"),
                *([r.id != bindparam("exclude_id")] if exclude else []),
            )
        )
    return union_all(*parts)


_AROUND = {
    (quota, exclude, ranges): _build_around(quota=quota, exclude=exclude, ranges=ranges)
    for quota in (False, True)
    for exclude in (False, True)
    for ranges in (False, True)
}


@dataclass(frozen=True)
class SlotQuery:
    """What `check_slot` asks the database about a slot, and what it needs to judge the rows
    (the robot's rules, the weeks of the user's hours quota)."""

    params: dict[str, Any]
    #: The user has an hours quota: the rows include the user's bookings ('q') in `wanted`'s weeks.
    quota: bool
    exclude: bool
    wanted: dict[datetime, float] | None
    rules: BookingRules


def plan_slot(
    robot: BookableRobot,
    user: User,
    start: datetime,
    end: datetime,
    now: datetime,
    settings: Settings,
    limits: user_crud.Limits,
    *,
    exclude_id: int | None = None,
    keeps_start: bool = False,
) -> SlotQuery:
    """The checks that need no database (range, robot state, grid and length), then what to
    ask it. Raises the first refusal."""
    if end <= start:
        raise InvalidTimeRange("ends_at must be after starts_at")
    if start < now - START_GRACE and not keeps_start:
        raise InvalidTimeRange("starts_at is in the past")
    if not robot_crud.bookable(robot):
        raise RobotNotBookable(
            f"robot {robot.name} is blocked: {robot.health_note}"
            if robot.health_blocked
            else f"robot {robot.name} is in maintenance"
        )
    rules = rules_for(robot, settings, staff=is_staff_role(user))
    check_shape(rules, start, end, robot.name)
    zone = settings.zone
    wanted = hours_by_week(start, end, zone) if limits.hours_per_week is not None else None
    window = (min(wanted), next_week(max(wanted), zone)) if wanted else None
    buffer = timedelta(seconds=rules.buffer_s)
    params: dict[str, Any] = {
        "robot_id": robot.id,
        "start": start,
        "end": end,
        "lo": start - buffer,
        "hi": end + buffer,
        "exclude_id": exclude_id,
    }
    if window is not None:
        params.update(user_id=user.id, q_lo=window[0], q_hi=window[1])
    return SlotQuery(params, window is not None, exclude_id is not None, wanted, rules)


def judge_slot(
    query: SlotQuery,
    rows: list[tuple[str, datetime, datetime]],
    robot: BookableRobot,
    end: datetime,
    now: datetime,
    settings: Settings,
    limits: user_crud.Limits,
) -> None:
    """Judge what the database answered to `query` (rows tagged 'm', 'r', 'q', see
    `_build_around`): maintenance, too far ahead, quota, other bookings, buffer, in that
    order. Raises the first refusal."""
    start = query.params["start"]
    if any(kind == "m" for kind, _, _ in rows):
        raise MaintenanceConflict()
    if limits.max_days_ahead is not None and end > now + timedelta(days=limits.max_days_ahead):
        raise TooFarAhead(f"bookings may end at most {limits.max_days_ahead} days ahead")
    if query.wanted is not None and limits.hours_per_week is not None:
        _check_hours(rows, query.wanted, limits.hours_per_week, settings.zone)
    neighbours = [(s, e) for kind, s, e in rows if kind == "r"]
    if any(s < end and e > start for s, e in neighbours):
        raise ReservationConflict()
    if neighbours:
        raise BufferConflict(
            f"robot {robot.name} keeps {query.rules.buffer_s // 60} min free between bookings "
            "(reset and cool-down)"
        )


def check_slot(
    db: Session,
    robot: Robot,
    user: User,
    start: datetime,
    end: datetime,
    now: datetime,
    settings: Settings,
    *,
    limits: user_crud.Limits | None = None,
    exclude_id: int | None = None,
    keeps_start: bool = False,
) -> None:
    """Every rule a booking of `user` on `robot` for [start, end) must pass, in the order a
    person would fix them: range, robot state, grid and length, maintenance, quota, other
    bookings, buffer. `limits` are the user's (read here when not given); `exclude_id` is a
    booking being moved (it does not collide with itself); `keeps_start` lets a running
    booking keep its start that is already past. One statement reads what the slot may
    collide with (`_AROUND`)."""
    if limits is None:
        limits = user_crud.limits(db, user)
    query = plan_slot(
        robot,
        user,
        start,
        end,
        now,
        settings,
        limits,
        exclude_id=exclude_id,
        keeps_start=keeps_start,
    )
    connection = db.connection()
    postgresql = connection.dialect.name == "postgresql"
    around = _AROUND[query.quota, query.exclude, postgresql]
    rows = [(r[0], r[1], r[2]) for r in connection.execute(around, query.params)]
    judge_slot(query, rows, robot, end, now, settings, limits)


def _check_hours(
    rows: list[tuple[str, datetime, datetime]],
    wanted: dict[datetime, float],
    hours_per_week: float,
    zone: tzinfo,
) -> None:
    booked: dict[datetime, float] = defaultdict(float)
    for kind, s, e in rows:
        if kind == "q":
            for w, h in hours_by_week(s, e, zone).items():
                booked[w] += h
    for w, h in wanted.items():
        if booked[w] + h > hours_per_week + 1e-9:
            raise QuotaExceeded(
                f"week of {w.astimezone(zone).date()}: {booked[w]:.2f} h booked + {h:.2f} h "
                f"requested > {hours_per_week:g} h allowed"
            )


def robot_and_limits_of(
    row: Sequence[Any], role: str
) -> tuple[RobotRow, user_crud.Limits, int | None]:
    """The raw booking paths' first read (their ROBOT_AND_LIMITS statement: the robot's
    columns, the user's quota row, the id of an earlier booking with the same
    Idempotency-Key) as the robot, the user's limits and that id."""
    robot = RobotRow(
        id=row[0],
        name=row[1],
        status=row[2],
        health_blocked=bool(row[3]),
        health_note=row[4],
        booking_granularity_s=row[5],
        min_booking_s=row[6],
        max_booking_s=row[7],
        staff_max_booking_s=row[8],
        buffer_s=row[9],
    )
    if row[10] is None:
        hours, days = user_crud.DEFAULT_QUOTAS[role]
        limits = user_crud.Limits(hours, days, default=True)
    else:
        limits = user_crud.Limits(row[11], row[12], default=False)
    return robot, limits, row[13]


def replay(
    db: Session, earlier_id: int, data: ReservationCreate, idempotency_key: str | None
) -> Reservation:
    """The booking made earlier with this Idempotency-Key (read through the session: on the
    SQLite write batch's connection it may be a booking of this very batch), if the request is
    the same; else IdempotencyKeyReused."""
    earlier = get(db, earlier_id)
    if not same_request(earlier, data):
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idempotency_key!r} was used for reservation {earlier.id}, "
            "a different request; use a new key for a new booking"
        )
    return earlier


def confirmed(
    new_id: int,
    robot_id: int,
    user_id: int,
    data: ReservationCreate,
    now: datetime,
    idempotency_key: str | None,
) -> Reservation:
    """A new booking's answer, built from what the request holds (not read back)."""
    return Reservation(
        id=new_id,
        robot_id=robot_id,
        user_id=user_id,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        status=ReservationStatus.confirmed.value,
        purpose=data.purpose,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        revision=0,
        series_id=None,
    )


def same_request(reservation: Reservation, data: ReservationCreate) -> bool:
    return (
        reservation.robot_id == data.robot_id
        and reservation.starts_at == data.starts_at
        and reservation.ends_at == data.ends_at
        and reservation.purpose == data.purpose
    )


#: What a booking reads of its robot: state, name and booking rules (robot_crud.bookable,
#: booking_rules.rules_for, the refusals' wording).
_ROBOT_COLUMNS = (
    "id",
    "name",
    "status",
    "health_blocked",
    "health_note",
    "booking_granularity_s",
    "min_booking_s",
    "max_booking_s",
    "staff_max_booking_s",
    "buffer_s",
)


def _build_robot_and_limits(*, lock_user: bool, key: bool) -> Executable:
    """The robot `robot_id`, the quota row of `user_id` (NULLs without one) and, with `key`,
    the id of that user's booking made with Idempotency-Key `key`. With `lock_user`
    (PostgreSQL) the robot's and the user's rows are locked, in that order (the order every
    writer takes them)."""
    robots, quotas, users = Robot.__table__, Quota.__table__, User.__table__
    r = Reservation.__table__.c
    earlier = (
        select(r.id)
        .where(r.user_id == bindparam("user_id"), r.idempotency_key == bindparam("key"))
        .scalar_subquery()
        if key
        else literal(None)
    )
    stmt = (
        select(
            *(robots.c[name] for name in _ROBOT_COLUMNS),
            quotas.c.user_id.label("quota_user"),
            quotas.c.hours_per_week,
            quotas.c.max_days_ahead,
            earlier.label("earlier_id"),
        )
        .select_from(robots)
        .outerjoin(quotas, quotas.c.user_id == bindparam("user_id"))
        .where(robots.c.id == bindparam("robot_id"))
    )
    if lock_user:
        stmt = stmt.join(users, users.c.id == bindparam("user_id")).with_for_update(
            of=(robots, users)
        )
    return stmt


_ROBOT_AND_LIMITS = {
    (lock_user, key): _build_robot_and_limits(lock_user=lock_user, key=key)
    for lock_user in (False, True)
    for key in (False, True)
}


def _robot_and_limits(
    db: Session, robot_id: int, user: User, idempotency_key: str | None
) -> tuple[Robot, user_crud.Limits, int | None]:
    """The robot (row-locked), the user's limits and the id of the user's booking made with
    `idempotency_key` (None without one), in one statement. On SQLite the write lock is
    already held (FOR UPDATE means nothing there), so the user row is not joined for its
    lock. The robot comes back as a detached Robot holding `_ROBOT_COLUMNS` only."""
    connection = db.connection()
    lock_user = connection.dialect.name != "sqlite"
    stmt = _ROBOT_AND_LIMITS[lock_user, idempotency_key is not None]
    params = {"robot_id": robot_id, "user_id": user.id, "key": idempotency_key}
    row = connection.execute(stmt, params).first()
    if row is None:
        raise NotFound(f"no robot {robot_id}")
    values = row._mapping
    robot = Robot(**{name: values[name] for name in _ROBOT_COLUMNS})
    if values["quota_user"] is None:
        hours, days = user_crud.DEFAULT_QUOTAS[user.role]
        limits = user_crud.Limits(hours, days, default=True)
    else:
        limits = user_crud.Limits(values["hours_per_week"], values["max_days_ahead"], default=False)
    earlier_id: int | None = values["earlier_id"]
    return robot, limits, earlier_id


_INSERT = insert(cast(Table, Reservation.__table__))

#: What the audit log says of a new booking.
AUDIT_ACTION = "reservation.create"


def create(
    db: Session,
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
    *,
    idempotency_key: str | None = None,
    series_id: str | None = None,
) -> tuple[Reservation, bool]:
    """Book; answers (reservation, replayed). With an idempotency key already used by this
    user for the same request, the booking made then comes back (replayed=True).

    Three statements inside the write transaction: robot + limits + idempotency key
    (`_robot_and_limits`), everything the slot may collide with (`_AROUND`), the insert (a
    Core INSERT: the answer is built from what the request already holds, not read back)."""
    if data.ends_at <= data.starts_at:
        raise InvalidTimeRange("ends_at must be after starts_at")
    robot, limits, earlier_id = _robot_and_limits(db, data.robot_id, user, idempotency_key)
    if earlier_id is not None:
        return replay(db, earlier_id, data, idempotency_key), True
    check_slot(db, robot, user, data.starts_at, data.ends_at, now, settings, limits=limits)
    values = {
        "robot_id": robot.id,
        "user_id": user.id,
        "starts_at": data.starts_at,
        "ends_at": data.ends_at,
        "status": ReservationStatus.confirmed.value,
        "purpose": data.purpose,
        "created_at": now,
        "updated_at": now,
        "idempotency_key": idempotency_key,
        "revision": 0,
        "series_id": series_id,
    }
    try:
        result = cast(CursorResult[Any], db.execute(_INSERT, values))
    except IntegrityError as exc:
        raise ReservationConflict("the robot is already booked for part of that time") from exc
    key = result.inserted_primary_key
    assert key is not None
    reservation = Reservation(id=key[0], **values)
    return reservation, False


@dataclass
class Occurrence:
    starts_at: datetime
    ends_at: datetime
    reservation: Reservation | None = None
    error: str | None = None
    detail: str | None = None


def occurrence_times(
    data: ReservationSeriesCreate, zone: tzinfo
) -> list[tuple[datetime, datetime]]:
    """Weekly starts at the same wall-clock time in the lab's zone (a 10:00 course stays at
    10:00 across a daylight-saving change), each as long as the first."""
    length = data.ends_at - data.starts_at
    local = data.starts_at.astimezone(zone)
    out = []
    for week in range(data.weeks):
        start = (local + week * WEEK).astimezone(UTC)  # wall-clock arithmetic in `zone`
        out.append((start, start + length))
    return out


def create_series(
    db: Session, user: User, data: ReservationSeriesCreate, now: datetime, settings: Settings
) -> tuple[str, list[Occurrence]]:
    """Book every week's occurrence, each checked like a single booking. Mode `all`: any
    refusal refuses the series (SeriesConflict, nothing booked); mode `available`: book what
    fits and report the rest."""
    series_id = uuid.uuid4().hex
    results = []
    for start, end in occurrence_times(data, settings.zone):
        item = Occurrence(start, end)
        single = ReservationCreate(
            robot_id=data.robot_id, starts_at=start, ends_at=end, purpose=data.purpose
        )
        try:
            with db.begin_nested():
                item.reservation, _ = create(db, user, single, now, settings, series_id=series_id)
        except ServiceError as exc:
            item.error, item.detail = exc.code, exc.detail
        results.append(item)
    refused = [r for r in results if r.error is not None]
    if refused and data.mode == "all":
        raise SeriesConflict(
            f"{len(refused)} of {len(results)} occurrences are refused; nothing was booked "
            '(send "mode": "available" to book the others)',
            [
                {
                    "starts_at": r.starts_at,
                    "ends_at": r.ends_at,
                    "error": r.error,
                    "detail": r.detail,
                }
                for r in results
            ],
        )
    return series_id, results


def move(
    db: Session,
    reservation: Reservation,
    start: datetime,
    end: datetime,
    now: datetime,
    settings: Settings,
) -> list[Revocation]:
    """Change a booking's times, checked like a new booking of its holder (it does not collide
    with itself). A running booking may keep its start. Its live leases are revoked (the
    caller issues new ones)."""
    if reservation.status != ReservationStatus.confirmed.value:
        raise ReservationNotActive(f"reservation {reservation.id} is cancelled")
    if reservation.ends_at <= now:
        raise ReservationNotActive(f"reservation {reservation.id} has ended")
    robot = robot_crud.get(db, reservation.robot_id, lock=True)
    holder = user_crud.get_user(db, reservation.user_id)
    db.scalars(select(User.id).where(User.id == holder.id).with_for_update()).first()
    check_slot(
        db,
        robot,
        holder,
        start,
        end,
        now,
        settings,
        exclude_id=reservation.id,
        keeps_start=start == reservation.starts_at,
    )
    if end <= now:
        raise InvalidTimeRange("ends_at is in the past")
    reservation.starts_at, reservation.ends_at = start, end
    reservation.revision += 1
    reservation.updated_at = now
    try:
        db.flush()
    except IntegrityError as exc:
        raise ReservationConflict("the robot is already booked for part of that time") from exc
    return lease_crud.revoke_for_reservation(db, reservation, reason="moved", now=now)


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
    reservation.revision += 1
    db.flush()
    return lease_crud.revoke_for_reservation(db, reservation, reason=reason, now=now)


def cancel_future_of(
    db: Session, user: User, *, reason: str, now: datetime
) -> tuple[list[Reservation], list[Revocation]]:
    """Cancel every confirmed booking of `user` that has not ended (running ones too)."""
    rows = db.scalars(
        select(Reservation)
        .where(
            Reservation.user_id == user.id,
            Reservation.status == ReservationStatus.confirmed.value,
            Reservation.ends_at > now,
        )
        .order_by(Reservation.starts_at)
        .with_for_update()
    ).all()
    revoked: list[Revocation] = []
    for reservation in rows:
        revoked += cancel(db, reservation, reason=reason, now=now)
    return list(rows), revoked
