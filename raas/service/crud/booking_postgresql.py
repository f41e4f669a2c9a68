"""A booking on PostgreSQL in two round trips, on the session's psycopg connection.

`reservations.create` + its audit row costs five round trips after the pool's check-out ping
(BEGIN, the robot's row lock, what the slot collides with, the insert with its audit row,
COMMIT), three of them while the robot's row lock is held, and each one a wait for the GIL
again in a busy process. Here psycopg's pipeline mode sends them in two:

1. BEGIN, the robot + limits + Idempotency-Key statement that takes the robot's and the user's
   row locks (as `reservations._build_robot_and_limits`), and the collision statement. The
   server runs them one after the other and, in READ COMMITTED, the second takes its snapshot
   when it starts, after the locks were granted: it sees every booking committed by the
   writer it waited for, as when it was sent apart. The collision statement reads the robot's
   buffer from the robot row itself (the same `COALESCE(robot, service default)` as
   `booking_rules.rules_for`) and the user's quota weeks only when the user has an hours quota
   (their row, else their role's default), so it needs nothing from the first answer.
2. The insert with its audit row in one statement (`WITH r AS (INSERT ...) INSERT ...`) and
   COMMIT. A refused insert (the exclusion constraint) aborts the pipeline before the COMMIT:
   nothing is kept, and the session's rollback ends the transaction.

The checks between the two are `reservations.plan_slot` and `judge_slot` (the same refusals in
the same order as every other path); the answer is given after COMMIT returned. The caches
watching reservations are told with `commit_cache.note_write` and emptied when the session then
commits (an empty commit: psycopg sends nothing for it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from raas.service.commit_cache import note_write
from raas.service.crud import audit
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import users as user_crud
from raas.service.errors import (
    IdempotencyKeyReused,
    InvalidTimeRange,
    NotFound,
    ReservationConflict,
)
from raas.service.models import AuditEntry, Reservation, ReservationStatus, Robot, User
from raas.service.schemas import ReservationCreate
from raas.service.settings import Settings

ROBOT_AND_LIMITS = (
    "SELECT r.id, r.name, r.status, r.health_blocked, r.health_note, r.booking_granularity_s,"
    " r.min_booking_s, r.max_booking_s, r.staff_max_booking_s, r.buffer_s,"
    " q.user_id, q.hours_per_week, q.max_days_ahead,"
    " (SELECT x.id FROM reservations AS x WHERE x.user_id = %(user_id)s"
    " AND x.idempotency_key = %(key)s)"
    " FROM robots AS r JOIN users AS u ON u.id = %(user_id)s"
    " LEFT OUTER JOIN quotas AS q ON q.user_id = %(user_id)s"
    " WHERE r.id = %(robot_id)s FOR UPDATE OF r, u"
)

#: Tagged as `reservations._build_around` tags its rows ('m', 'r', 'q'); the robot's bookings
#: by range overlap (the GiST index of the no-overlap exclusion constraint).
AROUND = (
    "WITH b AS (SELECT COALESCE(buffer_s, %(default_buffer_s)s) * interval '1 second' AS buf"
    " FROM robots WHERE id = %(robot_id)s)"
    " SELECT 'm', starts_at, ends_at FROM maintenance_blocks"
    " WHERE robot_id = %(robot_id)s AND starts_at < %(end)s AND ends_at > %(start)s"
    " UNION ALL"
    " SELECT 'r', x.starts_at, x.ends_at FROM reservations AS x, b"
    " WHERE x.robot_id = %(robot_id)s AND x.status = 'confirmed'"
    " AND x.starts_at < %(end)s + b.buf AND x.ends_at > %(start)s - b.buf"
    " AND tstzrange(x.starts_at, x.ends_at, '[)')"
    " && tstzrange(%(start)s - b.buf, %(end)s + b.buf, '[)')"
    " UNION ALL"
    " SELECT 'q', starts_at, ends_at FROM reservations"
    " WHERE user_id = %(user_id)s AND status = 'confirmed'"
    " AND starts_at < %(q_hi)s AND ends_at > %(q_lo)s"
    " AND COALESCE((SELECT hours_per_week IS NOT NULL FROM quotas WHERE user_id = %(user_id)s),"
    " %(default_has_hours)s)"
)

INSERT_AUDITED = (
    "WITH r AS (INSERT INTO reservations (robot_id, user_id, starts_at, ends_at, status,"
    " purpose, created_at, updated_at, idempotency_key, revision, series_id)"
    f" VALUES (%(robot_id)s, %(user_id)s, %(start)s, %(end)s,"
    f" '{ReservationStatus.confirmed.value}', %(purpose)s, %(now)s, %(now)s, %(key)s, 0, NULL)"
    " RETURNING id),"
    " a AS (INSERT INTO audit_log (at, actor_id, action, target, detail)"
    f" SELECT %(now)s, %(user_id)s, '{reservation_crud.AUDIT_ACTION}', 'reservation:' || r.id,"
    " %(detail)s FROM r)"
    " SELECT id FROM r"
)


def supported() -> bool:
    """psycopg's pipeline mode needs libpq 14 or newer."""
    return bool(psycopg.Pipeline.is_supported())


def _dbapi_error(exc: psycopg.Error, statement: str, params: Any) -> DBAPIError:
    return cast(DBAPIError, DBAPIError.instance(statement, params, exc, psycopg.Error))


def book(
    session: Session,
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
    *,
    idempotency_key: str | None = None,
) -> tuple[Reservation, bool]:
    """Book, audit and commit; answers (reservation, replayed). The session's transaction must
    not have run anything yet; it is committed here (the caller's commit then sends nothing)."""
    start, end = data.starts_at, data.ends_at
    if end <= start:
        raise InvalidTimeRange("ends_at must be after starts_at")
    zone = settings.zone
    weeks = reservation_crud.hours_by_week(start, end, zone)
    default_hours, _ = user_crud.DEFAULT_QUOTAS[user.role]
    params: dict[str, Any] = {
        "robot_id": data.robot_id,
        "user_id": user.id,
        "key": idempotency_key,
        "start": start,
        "end": end,
        "default_buffer_s": settings.buffer_s,
        "q_lo": min(weeks),
        "q_hi": reservation_crud.next_week(max(weeks), zone),
        "default_has_hours": default_hours is not None,
    }
    raw = session.connection().connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    statement = f"{ROBOT_AND_LIMITS}; {AROUND}"
    first, around = raw.cursor(), raw.cursor()
    try:
        with raw.pipeline():  # sent together; the block's end waits for both answers
            first.execute(ROBOT_AND_LIMITS, params)
            around.execute(AROUND, params)
        row = first.fetchone()
        found = [(r[0], r[1].astimezone(UTC), r[2].astimezone(UTC)) for r in around.fetchall()]
    except psycopg.Error as exc:
        raise _dbapi_error(exc, statement, params) from exc
    finally:
        first.close()
        around.close()
    if row is None:
        raise NotFound(f"no robot {data.robot_id}")
    robot = Robot(
        id=row[0],
        name=row[1],
        status=row[2],
        health_blocked=row[3],
        health_note=row[4],
        booking_granularity_s=row[5],
        min_booking_s=row[6],
        max_booking_s=row[7],
        staff_max_booking_s=row[8],
        buffer_s=row[9],
    )
    if row[10] is None:
        limits = user_crud.Limits(default_hours, user_crud.DEFAULT_QUOTAS[user.role][1], True)
    else:
        limits = user_crud.Limits(row[11], row[12], default=False)
    if row[13] is not None:
        return _replay(session, row[13], data, idempotency_key), True
    query = reservation_crud.plan_slot(robot, user, start, end, now, settings, limits)
    if not query.quota:  # the statement read the quota weeks only for an hours quota
        found = [r for r in found if r[0] != "q"]
    reservation_crud.judge_slot(query, found, robot, end, now, settings, limits)
    detail = {"ends_at": end, "robot_id": robot.id, "starts_at": start}
    insert = {
        "robot_id": robot.id,
        "user_id": user.id,
        "start": start,
        "end": end,
        "purpose": data.purpose,
        "now": now,
        "key": idempotency_key,
        "detail": audit.detail_text(detail),
    }
    cursor = raw.cursor()
    try:
        with raw.pipeline():  # the insert and COMMIT together; COMMIT is skipped if it fails
            cursor.execute(INSERT_AUDITED, insert)
            raw.commit()
        new = cursor.fetchone()
    except psycopg.IntegrityError as exc:  # the exclusion constraint (or the key's index)
        raise ReservationConflict("the robot is already booked for part of that time") from exc
    except psycopg.Error as exc:
        raise _dbapi_error(exc, INSERT_AUDITED, insert) from exc
    finally:
        cursor.close()
    assert new is not None
    note_write(session, Reservation.__table__, AuditEntry.__table__)
    reservation = Reservation(
        id=new[0],
        robot_id=robot.id,
        user_id=user.id,
        starts_at=start,
        ends_at=end,
        status=ReservationStatus.confirmed.value,
        purpose=data.purpose,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        revision=0,
        series_id=None,
    )
    return reservation, False


def _replay(
    session: Session, earlier_id: int, data: ReservationCreate, idempotency_key: str | None
) -> Reservation:
    """The booking made earlier with this Idempotency-Key, if the request is the same."""
    earlier = reservation_crud.get(session, earlier_id)
    if not reservation_crud.same_request(earlier, data):
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idempotency_key!r} was used for reservation {earlier.id}, "
            "a different request; use a new key for a new booking"
        )
    return earlier
