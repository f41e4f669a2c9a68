"""A booking on SQLite, run inside the write batch on the batch's sqlite3 connection.

The same booking as `reservations.create` followed by its audit row (what the booking route does
on PostgreSQL), with the same checks in the same order (`reservations.plan_slot` and
`judge_slot`) and the same rows written, but each statement is SQL written once below and run on
the raw sqlite3 connection with its parameters bound by hand: no SQLAlchemy execution context,
compiled-cache lookup, result object or type processing per statement (about 70 us each on the
development VM, docs/performance.md "The create-booking path"). Datetimes are bound as the text
SQLAlchemy's SQLite dialect stores (`2031-03-03 09:00:00.000000`, naive UTC: text comparison is
time comparison, which the overlap trigger relies on) and read back as aware UTC datetimes.

Only for a job submitted to the write batch with `raw=True` (raas/service/write_batch.py): the
batch holds the write transaction (BEGIN IMMEDIATE) and wraps each booking in a savepoint, so the
checks see the bookings made before this one in the batch, and the trigger behind them refuses
an overlap that slipped past. The caches watching reservations (the availability answers) are
told with `commit_cache.note_write` and emptied inside the batch's commit; the token cache does
not watch reservations nor the audit log and is left alone.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from raas.service.commit_cache import note_write
from raas.service.crud import audit
from raas.service.crud import reservations as reservation_crud
from raas.service.errors import (
    InvalidTimeRange,
    NotFound,
    ReservationConflict,
)
from raas.service.models import AuditEntry, Reservation, ReservationStatus, User
from raas.service.schemas import ReservationCreate
from raas.service.settings import Settings

#: The robot, the user's quota row (NULLs without one) and the id of the user's booking made
#: with the Idempotency-Key (NULL without a key: `= NULL` matches nothing). As
#: `reservations._build_robot_and_limits` without the row locks (SQLite: the batch holds the
#: database's write lock).
ROBOT_AND_LIMITS = (
    "SELECT r.id, r.name, r.status, r.health_blocked, r.health_note, r.booking_granularity_s,"
    " r.min_booking_s, r.max_booking_s, r.staff_max_booking_s, r.buffer_s,"
    " q.user_id, q.hours_per_week, q.max_days_ahead,"
    " (SELECT x.id FROM reservations AS x WHERE x.user_id = :user_id"
    " AND x.idempotency_key = :key)"
    " FROM robots AS r LEFT OUTER JOIN quotas AS q ON q.user_id = :user_id"
    " WHERE r.id = :robot_id"
)

_MAINTENANCE = (
    "SELECT 'm', starts_at, ends_at FROM maintenance_blocks"
    " WHERE robot_id = :robot_id AND starts_at < :end AND ends_at > :start"
)
#: The robot's confirmed bookings overlapping [lo, hi). They never overlap each other (the
#: overlap trigger keeps it so), so sorted by start they are sorted by end too: the ones that
#: overlap are those starting in [lo, hi) and, at most, the last one starting before `lo`.
#: Both are short walks of the (robot_id, starts_at, ends_at) index; `starts_at < hi AND
#: ends_at > lo` walks every earlier booking of the robot, a cost growing with the calendar.
_NEIGHBOURS = (
    "SELECT 'r', starts_at, ends_at FROM reservations"
    " WHERE robot_id = :robot_id AND status = 'confirmed' AND starts_at >= :lo"
    " AND starts_at < :hi"
    " UNION ALL"
    " SELECT 'r', starts_at, ends_at FROM (SELECT starts_at, ends_at FROM reservations"
    " WHERE robot_id = :robot_id AND status = 'confirmed' AND starts_at < :lo"
    " ORDER BY starts_at DESC LIMIT 1) WHERE ends_at > :lo"
)
_QUOTA_WEEKS = (
    "SELECT 'q', starts_at, ends_at FROM reservations"
    " WHERE user_id = :user_id AND status = 'confirmed' AND starts_at < :q_hi AND ends_at > :q_lo"
)
#: Everything the slot may collide with, tagged as `reservations._build_around` tags it; by
#: whether the user has an hours quota.
AROUND = {
    False: f"{_MAINTENANCE} UNION ALL {_NEIGHBOURS}",
    True: f"{_MAINTENANCE} UNION ALL {_NEIGHBOURS} UNION ALL {_QUOTA_WEEKS}",
}

INSERT = (
    "INSERT INTO reservations (robot_id, user_id, starts_at, ends_at, status, purpose,"
    " created_at, updated_at, idempotency_key, revision, series_id)"
    f" VALUES (?, ?, ?, ?, '{ReservationStatus.confirmed.value}', ?, ?, ?, ?, 0, NULL)"
)
AUDIT = (
    "INSERT INTO audit_log (at, actor_id, action, target, detail)"
    " VALUES (?, ?, 'reservation.create', ?, ?)"
)


def db_time(t: datetime) -> str:
    """How SQLAlchemy's SQLite dialect stores `t` (through `models.UTCDateTime`): naive UTC
    text with microseconds."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def py_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _dbapi_error(exc: sqlite3.Error, statement: str, params: Any) -> DBAPIError:
    """The SQLAlchemy exception the same error would have raised through a session (an
    OperationalError, "database busy", answers 503 like any other)."""
    return cast(
        DBAPIError,
        DBAPIError.instance(statement, params, exc, sqlite3.Error),
    )


def book(
    session: Session,
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
    *,
    idempotency_key: str | None = None,
) -> tuple[Reservation, bool]:
    """Book and audit, as `reservations.create` + `audit.record("reservation.create", ...)`;
    answers (reservation, replayed). Four statements on the batch's connection: robot + limits
    + idempotency key, everything the slot may collide with, the insert, the audit row."""
    if data.ends_at <= data.starts_at:
        raise InvalidTimeRange("ends_at must be after starts_at")
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    params: Any
    statement, params = (
        ROBOT_AND_LIMITS,
        {
            "robot_id": data.robot_id,
            "user_id": user.id,
            "key": idempotency_key,
        },
    )
    try:
        row = cursor.execute(statement, params).fetchone()
        if row is None:
            raise NotFound(f"no robot {data.robot_id}")
        robot, limits, earlier_id = reservation_crud.robot_and_limits_of(row, user.role)
        if earlier_id is not None:
            return reservation_crud.replay(session, earlier_id, data, idempotency_key), True
        query = reservation_crud.plan_slot(
            robot, user, data.starts_at, data.ends_at, now, settings, limits
        )
        statement = AROUND[query.quota]
        params = {k: db_time(v) if isinstance(v, datetime) else v for k, v in query.params.items()}
        rows = [(r[0], py_time(r[1]), py_time(r[2])) for r in cursor.execute(statement, params)]
        reservation_crud.judge_slot(query, rows, robot, data.ends_at, now, settings, limits)
        at = db_time(now)
        statement, params = (
            INSERT,
            (
                robot.id,
                user.id,
                db_time(data.starts_at),
                db_time(data.ends_at),
                data.purpose,
                at,
                at,
                idempotency_key,
            ),
        )
        try:
            cursor.execute(statement, params)
        except sqlite3.IntegrityError as exc:  # the overlap trigger (or the key's unique index)
            raise ReservationConflict("the robot is already booked for part of that time") from exc
        new_id = cursor.lastrowid
        assert new_id is not None
        detail = {"ends_at": data.ends_at, "robot_id": robot.id, "starts_at": data.starts_at}
        statement, params = (
            AUDIT,
            (
                at,
                user.id,
                f"reservation:{new_id}",
                audit.detail_text(detail),
            ),
        )
        cursor.execute(statement, params)
    except sqlite3.Error as exc:
        raise _dbapi_error(exc, statement, params) from exc
    finally:
        cursor.close()
    note_write(session, Reservation.__table__, AuditEntry.__table__)
    return (
        reservation_crud.confirmed(new_id, robot.id, user.id, data, now, idempotency_key),
        False,
    )
