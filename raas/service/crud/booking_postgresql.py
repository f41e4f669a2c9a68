"""A booking on PostgreSQL: two round trips in its transaction, one of them inside the robot's lock.

The same booking as `reservations.create` followed by its audit row, with the same checks in the
same order (`reservations.plan_slot` and `judge_slot`), the same row locks and the same rows
written. Bookings of one robot queue on the robot's row lock, so what limits their rate is how
long a booking holds it: from the lock to the end of its COMMIT. Measured under 32 connections
(docs/performance.md, "The create-booking path"), the holder's backend spent two thirds of that
time idle, waiting for the service's Python to read one answer and send the next statement
(about 0.5 ms each, three times per booking). So:

- **round trip 1**: the row-lock statement and the collision statement, sent as one query
  string (psycopg's client-side binding, PostgreSQL's simple query protocol: several statements
  in one message). PostgreSQL runs them one after the other and, in READ COMMITTED, takes the
  collision statement's snapshot when that statement starts, i.e. after the lock was granted:
  it sees the booking committed by the writer whose lock it waited for
  (tests/service/test_booking_lock_wait.py). The collision statement computes the slot
  widened by the robot's buffer from the locked robot row itself, and returns the user's
  bookings in the weeks touched only when the user has an hours quota.
- the checks, in Python, on what came back (the only wait inside the lock);
- **round trip 2**: the reservation and its audit row (ONE data-modifying `WITH` statement) and
  the COMMIT, as one query string: the lock is released by that COMMIT with no further wait on
  Python. A failing insert (the exclusion constraint `reservations_no_overlap`, behind the
  checks) stops the string there: nothing is committed, the caller rolls back, and the overlap
  is refused as a reservation conflict.

psycopg's client-side binding quotes each value with the connection's encoding (its adapters,
the same as server-side binding uses); statements are not prepared, so PostgreSQL parses and
plans them each time, which costs its CPU but no wait of the lock holder on Python.

The caches watching reservations (the availability answers) are told with
`commit_cache.note_write`; the caller's session commit (a no-op on the connection, which is
already committed) empties them before the answer leaves. The token cache watches neither table.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, cast
from weakref import WeakKeyDictionary

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from raas.service.commit_cache import note_write
from raas.service.crud import audit
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import users as user_crud
from raas.service.errors import (
    InvalidTimeRange,
    NotFound,
    ReservationConflict,
)
from raas.service.models import AuditEntry, Reservation, ReservationStatus, User
from raas.service.schemas import ReservationCreate
from raas.service.settings import Settings

#: The robot and the user's rows locked (in that order: the order every writer takes them), the
#: user's quota row (NULLs without one) and the id of the user's booking made with the
#: Idempotency-Key (NULL without a key: `= NULL` matches nothing). As
#: `reservations._build_robot_and_limits` with `lock_user`.
ROBOT_AND_LIMITS = (
    "SELECT r.id, r.name, r.status, r.health_blocked, r.health_note, r.booking_granularity_s,"
    " r.min_booking_s, r.max_booking_s, r.staff_max_booking_s, r.buffer_s,"
    " q.user_id, q.hours_per_week, q.max_days_ahead,"
    " (SELECT x.id FROM reservations AS x WHERE x.user_id = %(user_id)s::integer"
    " AND x.idempotency_key = %(key)s::varchar)"
    " FROM robots AS r LEFT OUTER JOIN quotas AS q ON q.user_id = %(user_id)s::integer"
    " JOIN users AS u ON u.id = %(user_id)s::integer"
    " WHERE r.id = %(robot_id)s::integer FOR UPDATE OF r, u"
)

#: Everything the slot may collide with, tagged as `reservations._build_around` tags it: 'm' the
#: robot's maintenance blocks overlapping [start, end); 'r' the robot's confirmed bookings
#: overlapping the slot widened by the robot's buffer (its own `buffer_s`, else the service's:
#: `booking_rules.rules_for`), by range overlap, which the GiST index of the exclusion
#: constraint answers (the widened slot is a scalar subquery, so an index condition even in a
#: generic plan; as a join it became a filter over every booking of the robot); 'q' the user's
#: confirmed bookings overlapping [q_lo, q_hi) (the weeks the slot touches) when the user has an
#: hours quota (their quota row's, else their role's default, `limited_by_default`).
AROUND = (
    "SELECT 'm'::varchar, starts_at, ends_at FROM maintenance_blocks"
    " WHERE robot_id = %(robot_id)s::integer AND starts_at < %(end)s::timestamptz"
    " AND ends_at > %(start)s::timestamptz"
    " UNION ALL"
    " SELECT 'r'::varchar, starts_at, ends_at FROM reservations"
    " WHERE robot_id = %(robot_id)s::integer AND status = 'confirmed'"
    " AND tstzrange(starts_at, ends_at, '[)') && (SELECT tstzrange(%(start)s::timestamptz - b,"
    " %(end)s::timestamptz + b, '[)') FROM (SELECT make_interval(secs =>"
    " coalesce(buffer_s, %(default_buffer_s)s::integer)) AS b FROM robots"
    " WHERE id = %(robot_id)s::integer) AS buffer)"
    " UNION ALL"
    " SELECT 'q'::varchar, starts_at, ends_at FROM reservations"
    " WHERE user_id = %(user_id)s::integer AND status = 'confirmed'"
    " AND starts_at < %(q_hi)s::timestamptz AND ends_at > %(q_lo)s::timestamptz"
    " AND tstzrange(starts_at, ends_at, '[)')"
    " && tstzrange(%(q_lo)s::timestamptz, %(q_hi)s::timestamptz, '[)')"
    " AND coalesce((SELECT hours_per_week IS NOT NULL FROM quotas"
    " WHERE user_id = %(user_id)s::integer), %(limited_by_default)s::boolean)"
)

#: The reservation and its audit row (`audit.record(..., "reservation.create",
#: "reservation:<id>", ...)`) in one statement, answering the new reservation's id.
INSERT = (
    "WITH new AS (INSERT INTO reservations (robot_id, user_id, starts_at, ends_at, status,"
    " purpose, created_at, updated_at, idempotency_key, revision, series_id)"
    " VALUES (%(robot_id)s::integer, %(user_id)s::integer, %(starts_at)s::timestamptz,"
    f" %(ends_at)s::timestamptz, '{ReservationStatus.confirmed.value}', %(purpose)s::text,"
    " %(at)s::timestamptz, %(at)s::timestamptz, %(key)s::varchar, 0, NULL) RETURNING id),"
    " logged AS (INSERT INTO audit_log (at, actor_id, action, target, detail)"
    f" SELECT %(at)s::timestamptz, %(user_id)s::integer, '{reservation_crud.AUDIT_ACTION}',"
    " 'reservation:' || new.id, %(detail)s::text FROM new)"
    " SELECT id FROM new"
)


def _prepared(name: str, sql: str) -> tuple[str, str]:
    """`sql` as a server-side prepared statement: its PREPARE (each `%(param)s::type` becomes a
    `$n` of that type) and the EXECUTE that runs it with the values bound client-side."""
    params: list[tuple[str, str]] = []

    def number(match: re.Match[str]) -> str:
        key, kind = match.group(1), match.group(2)
        for i, (known, _) in enumerate(params):
            if known == key:
                return f"${i + 1}"
        params.append((key, kind))
        return f"${len(params)}"

    body = re.sub(r"%\((\w+)\)s::(\w+)", number, sql)
    assert "%(" not in body, f"{name}: a parameter without a type cast"
    prepare = f"PREPARE {name} ({', '.join(kind for _, kind in params)}) AS {body}"
    execute = f"EXECUTE {name} ({', '.join(f'%({key})s' for key, _ in params)})"
    return prepare, execute


#: The statements are prepared once per connection (`_PREPARE`, one round trip on a
#: connection's first booking; a prepared statement outlives a rolled-back transaction) and
#: run by EXECUTE: PostgreSQL neither parses nor, once it settled on a generic plan, plans them
#: again, and planning the collision statement (0.3-0.5 ms) would otherwise happen inside the
#: robot's lock.
_STATEMENTS = {
    "raas_booking_lock": ROBOT_AND_LIMITS,
    "raas_booking_around": AROUND,
    "raas_booking_insert": INSERT,
}
_PREPARE = "; ".join(_prepared(name, sql)[0] for name, sql in _STATEMENTS.items())
_EXECUTE = {name: _prepared(name, sql)[1] for name, sql in _STATEMENTS.items()}
#: Round trip 1: the row locks, then what the slot collides with.
LOCK_AND_AROUND = f"{_EXECUTE['raas_booking_lock']}; {_EXECUTE['raas_booking_around']}"
#: Round trip 2: the reservation with its audit row, then the COMMIT (waiting for its WAL flush,
#: inside the robot's lock).
INSERT_AND_COMMIT = f"{_EXECUTE['raas_booking_insert']}; COMMIT"
#: A transactional WAL record of no consequence, committed with the session's (synchronous)
#: durability: its commit waits for the WAL to be flushed up to its own commit record.
DURABLE_MARK = "SELECT pg_logical_emit_message(true, 'raas', 'booking')"
#: Round trip 2 where the mark can be written: the booking's transaction commits without
#: waiting for the WAL flush (`synchronous_commit` off for it alone), so the robot's lock is
#: released before the fsync; then the mark, in a transaction of its own, waits for the flush
#: of everything written before it, the booking's commit record included, before the answer
#: comes back. Nothing is acknowledged before the booking is on disk, and the fsync is shared by
#: every booking committed meanwhile (PostgreSQL flushes all the WAL inserted so far).
INSERT_AND_COMMIT_THEN_FLUSH = (
    f"SET LOCAL synchronous_commit TO off; {_EXECUTE['raas_booking_insert']}; COMMIT;"
    f" {DURABLE_MARK}"
)
#: The psycopg connections whose session holds the prepared statements, and whether the durable
#: mark can be written there (False: a server that refuses `pg_logical_emit_message`).
_READY: WeakKeyDictionary[Any, bool] = WeakKeyDictionary()


def _prepare(session: Session, cursor: psycopg.ClientCursor[Any]) -> None:
    """Prepare the booking's statements on the session's connection."""
    try:
        cursor.execute(_PREPARE)
    except psycopg.Error:
        # Some of the statements may exist now: never reuse this connection.
        session.connection().invalidate()
        raise


def _set_up(session: Session, cursor: psycopg.ClientCursor[Any], fresh: bool) -> None:
    """A connection's first booking: find out whether the durable mark can be written (in a
    transaction of its own when nothing else is in this one), then prepare the statements."""
    raw = cursor.connection
    try:
        cursor.execute(DURABLE_MARK)
        mark = True
    except psycopg.Error:
        if not fresh:
            raise
        mark = False
    if fresh:
        raw.rollback()  # the probe's transaction; the booking begins anew
    _prepare(session, cursor)
    _READY[raw] = mark


def _aware(t: datetime) -> datetime:
    """As `models.UTCDateTime` answers a time: aware, in UTC."""
    return t.astimezone(UTC)


def _dbapi_error(exc: psycopg.Error, statement: str, params: Any) -> DBAPIError:
    """The SQLAlchemy exception the same error would have raised through a session (an
    OperationalError answers 503, an IntegrityError 409, as for any other route)."""
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
    """Book and audit, as `reservations.create` + `audit.record("reservation.create", ...)`,
    in `session`'s transaction; answers (reservation, replayed). A new booking is COMMITTED
    here (the caller's commit then only runs the session's commit hooks); a refusal or a replay
    leaves the transaction to the caller."""
    if data.ends_at <= data.starts_at:
        raise InvalidTimeRange("ends_at must be after starts_at")
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    cursor = psycopg.ClientCursor(cast(psycopg.Connection[Any], raw))
    weeks = reservation_crud.hours_by_week(data.starts_at, data.ends_at, settings.zone)
    statement = LOCK_AND_AROUND
    params: dict[str, Any] = {
        "robot_id": data.robot_id,
        "user_id": user.id,
        "key": idempotency_key,
        "start": data.starts_at,
        "end": data.ends_at,
        "default_buffer_s": settings.buffer_s,
        "q_lo": min(weeks),
        "q_hi": reservation_crud.next_week(max(weeks), settings.zone),
        "limited_by_default": user_crud.DEFAULT_QUOTAS[user.role][0] is not None,
    }
    fresh = raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        if raw not in _READY:
            _set_up(session, cursor, fresh)
        try:
            cursor.execute(statement, params)
        except psycopg.errors.InvalidSqlStatementName:
            # psycopg sends DEALLOCATE ALL after a ROLLBACK on a connection where it prepared
            # statements of its own (psycopg/_preparing.py), which drops ours too. Nothing was
            # done in this transaction yet (`fresh`): roll it back, prepare again, retry.
            if not fresh:
                raise
            raw.rollback()
            _prepare(session, cursor)
            cursor.execute(statement, params)
        row = cursor.fetchone()
        cursor.nextset()
        around = [(r[0], _aware(r[1]), _aware(r[2])) for r in cursor.fetchall()]
        if row is None:
            raise NotFound(f"no robot {data.robot_id}")
        robot, limits, earlier_id = reservation_crud.robot_and_limits_of(row, user.role)
        if earlier_id is not None:
            return reservation_crud.replay(session, earlier_id, data, idempotency_key), True
        query = reservation_crud.plan_slot(
            robot, user, data.starts_at, data.ends_at, now, settings, limits
        )
        # What came back is what `query` asks for: the same buffer, and the quota weeks exactly
        # when the user has an hours quota.
        rows = [r for r in around if r[0] != "q" or query.quota]
        reservation_crud.judge_slot(query, rows, robot, data.ends_at, now, settings, limits)
        detail = {"ends_at": data.ends_at, "robot_id": robot.id, "starts_at": data.starts_at}
        statement, params = (
            INSERT_AND_COMMIT_THEN_FLUSH if _READY.get(raw) else INSERT_AND_COMMIT,
            {
                "robot_id": robot.id,
                "user_id": user.id,
                "starts_at": data.starts_at,
                "ends_at": data.ends_at,
                "purpose": data.purpose,
                "at": now,
                "key": idempotency_key,
                "detail": audit.detail_text(detail),
            },
        )
        try:
            cursor.execute(statement, params)
            if statement is INSERT_AND_COMMIT_THEN_FLUSH:
                cursor.nextset()  # past the SET
            inserted = cursor.fetchone()
        except psycopg.errors.IntegrityError as exc:  # the exclusion constraint (or the key)
            raise ReservationConflict("the robot is already booked for part of that time") from exc
        assert inserted is not None
        new_id: int = inserted[0]
    except psycopg.Error as exc:
        raise _dbapi_error(exc, statement, params) from exc
    finally:
        cursor.close()
    note_write(session, Reservation.__table__, AuditEntry.__table__)
    return (
        reservation_crud.confirmed(new_id, robot.id, user.id, data, now, idempotency_key),
        False,
    )
