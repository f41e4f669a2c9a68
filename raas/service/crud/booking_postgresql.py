"""A booking on PostgreSQL: judged without locks, written in one message that holds them.

The same booking as `reservations.create` followed by its audit row, with the same checks in the
same order (`reservations.plan_slot` and `judge_slot`), the same row locks and the same rows
written. Bookings of one robot queue on the robot's row lock, so what limits their rate is how
long a booking holds it. Measured under 32 connections (docs/performance.md, "The create-booking
path", fourth and fifth passes), a booking that judged its slot while holding the lock kept it
for the service's Python between two round trips: the request's thread had to get the GIL back
(from the event loop and 31 other requests) to read the answer and send the next statement.
So the route's booking (`_book_unlocked`) runs in two round trips, on a connection in
autocommit:

- **round trip 1**, no lock: one statement (`READ`) answers the robot and the user's limits row,
  the id of an earlier booking with the same Idempotency-Key, everything the slot collides with
  (maintenance blocks, the robot's bookings within its buffer, the user's bookings in the weeks
  touched when the user has an hours quota: `AROUND`), and an md5 of the text of all of that.
- the checks, in Python, on what came back (a refusal needs nothing more);
- **round trip 2**, one message: BEGIN; `synchronous_commit` off for this transaction; the
  robot's and the user's row locks (`LOCK`); the reservation and its audit row in one statement
  that first reads everything of round trip 1 again and writes only when its md5 is the one
  judged (`INSERT_IF_UNCHANGED`; a statement of its own after the locks, so in READ COMMITTED
  its snapshot is taken after they were granted: it sees the booking of the writer it waited
  for); COMMIT, which releases the locks without waiting for the WAL flush; and the durable
  mark (`pg_logical_emit_message` in a transaction of its own with the server's synchronous
  commit), which waits until the WAL is flushed past the booking's commit record before the
  answer comes back. The locks are held for the server's work alone.
- nothing written (something changed between the two reads, e.g. the booking of the writer it
  waited for): the booking is made again under the locks from the start (`_book_locked`: BEGIN,
  the locks and the collision read in one round trip, the checks, the insert + COMMIT + mark in
  another), which is also the path inside a transaction already open.

A failing insert (the exclusion constraint `reservations_no_overlap`, behind the checks) stops
the message there: nothing is committed, the transaction is rolled back, and the overlap is
refused as a reservation conflict. The statements are prepared once per connection
(`PREPARE`/`EXECUTE`, values bound client-side by psycopg's `ClientCursor`, several statements
per message in PostgreSQL's simple query protocol), so PostgreSQL neither parses nor plans them
inside the lock.

The caches watching reservations (the availability answers) are told with
`commit_cache.note_write`; the caller's session commit (a no-op on the connection, which is
already committed) empties them before the answer leaves. The token cache watches neither table.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

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
from raas.service.schemas import ReservationCreate, ReservationPublic
from raas.service.settings import Settings

if TYPE_CHECKING:
    from raas.service.db import Database

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

#: The robot + limits row (as ROBOT_AND_LIMITS, without the row locks) and everything the slot
#: collides with (AROUND, ordered), as the CTEs `robot` and `seen`: what the checks judge. The
#: lock-free first read and the conditional insert both start with it.
SEEN = (
    "WITH robot (id, name, status, health_blocked, health_note, booking_granularity_s,"
    " min_booking_s, max_booking_s, staff_max_booking_s, buffer_s, quota_user, hours_per_week,"
    f" max_days_ahead, earlier_id) AS ({ROBOT_AND_LIMITS.removesuffix(' FOR UPDATE OF r, u')}),"
    f" around (kind, starts_at, ends_at) AS ({AROUND}),"
    " seen AS (SELECT array_agg(kind ORDER BY kind, starts_at, ends_at) AS kinds,"
    " array_agg(starts_at ORDER BY kind, starts_at, ends_at) AS starts,"
    " array_agg(ends_at ORDER BY kind, starts_at, ends_at) AS ends FROM around)"
)
#: What the row text of `robot` and `seen` hashes to: equal hashes, equal rows to judge.
_SEEN_HASH = "md5(row(robot.*, seen.kinds, seen.starts, seen.ends)::text)"
#: The first read, without any lock: the robot + limits row, the colliding rows as three arrays
#: and the hash of all of it.
READ = f"{SEEN} SELECT robot.*, seen.kinds, seen.starts, seen.ends, {_SEEN_HASH} FROM robot, seen"
#: The robot's and the user's row locks, in the order every writer takes them.
LOCK = (
    "SELECT r.id FROM robots AS r JOIN users AS u ON u.id = %(user_id)s::integer"
    " WHERE r.id = %(robot_id)s::integer FOR UPDATE OF r, u"
)
#: The reservation and its audit row, written only when what the checks judged (READ, outside
#: the lock) is what the database holds now (`seen`, read again after LOCK, in a statement of
#: its own so its snapshot is taken after the lock was granted): no row back when it changed.
INSERT_IF_UNCHANGED = (
    f"{SEEN}, new AS (INSERT INTO reservations (robot_id, user_id, starts_at, ends_at, status,"
    " purpose, created_at, updated_at, idempotency_key, revision, series_id)"
    " SELECT %(robot_id)s::integer, %(user_id)s::integer, %(start)s::timestamptz,"
    f" %(end)s::timestamptz, '{ReservationStatus.confirmed.value}', %(purpose)s::text,"
    " %(at)s::timestamptz, %(at)s::timestamptz, %(key)s::varchar, 0, NULL FROM robot, seen"
    f" WHERE {_SEEN_HASH} = %(seen)s::text RETURNING id),"
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
    "raas_booking_read": READ,
    "raas_booking_lock_only": LOCK,
    "raas_booking_insert_if": INSERT_IF_UNCHANGED,
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
#: The lock-free first read (a connection in autocommit: no BEGIN of its own, one round trip).
READ_ONCE = _EXECUTE["raas_booking_read"]
#: The second round trip of a booking judged on READ_ONCE, in one message: BEGIN, the row
#: locks, the reservation and its audit row written only if nothing READ_ONCE saw changed, the
#: COMMIT (releasing the locks without waiting for the WAL flush), the durable mark (waiting
#: for it). The locks are held for the server's work alone: no wait on the service's Python.
_BOOK_IF_UNCHANGED = (
    f"{_EXECUTE['raas_booking_lock_only']}; {_EXECUTE['raas_booking_insert_if']}; COMMIT"
)
BOOK_IF_UNCHANGED = f"BEGIN; {_BOOK_IF_UNCHANGED}"
BOOK_IF_UNCHANGED_THEN_FLUSH = (
    f"BEGIN; SET LOCAL synchronous_commit TO off; {_BOOK_IF_UNCHANGED}; {DURABLE_MARK}"
)
#: The psycopg connections whose session holds the prepared statements, and whether the durable
#: mark can be written there (False: a server that refuses `pg_logical_emit_message`).
_READY: WeakKeyDictionary[Any, bool] = WeakKeyDictionary()


def _prepare(pooled: PoolProxiedConnection, cursor: psycopg.ClientCursor[Any]) -> None:
    """Prepare the booking's statements on the pool's connection."""
    try:
        cursor.execute(_PREPARE)
    except psycopg.Error:
        # Some of the statements may exist now: never reuse this connection.
        pooled.invalidate()
        raise


def _set_up(pooled: PoolProxiedConnection, cursor: psycopg.ClientCursor[Any], fresh: bool) -> None:
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
    _prepare(pooled, cursor)
    _READY[raw] = mark


def _cursor_of(info: dict[Any, Any], raw: Any) -> psycopg.ClientCursor[Any]:
    """The connection's booking cursor, made on its first booking and kept in the pool's record
    of the connection (dropped with it): making a psycopg cursor copies the connection's map of
    adapters, 4% of the worker's time when done per booking (docs/performance.md, fifth pass)."""
    cursor: psycopg.ClientCursor[Any] | None = info.get(_CURSOR)
    if cursor is None or cursor.connection is not raw:
        cursor = info[_CURSOR] = psycopg.ClientCursor(cast(psycopg.Connection[Any], raw))
    return cursor


#: Key of the booking cursor in the pool's `info` of a connection.
_CURSOR = "raas_booking_cursor"


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
) -> tuple[Reservation | ReservationPublic, bool]:
    """Book and audit, as `reservations.create` + `audit.record("reservation.create", ...)`,
    in `session`'s transaction; answers (reservation, replayed). A new booking is COMMITTED
    here (the caller's commit then only runs the session's commit hooks, which empty the caches
    watching reservations); a refusal or a replay leaves the transaction to the caller. With no
    transaction open on the session's connection yet, as `book_apart`; inside one, under the
    locks from the start (`_book_locked`)."""
    earlier_id, answer = _book(
        session.connection().connection, user, data, now, settings, idempotency_key
    )
    if earlier_id is not None:
        return reservation_crud.replay(session, earlier_id, data, idempotency_key), True
    note_write(session, Reservation.__table__, AuditEntry.__table__)
    assert answer is not None
    return answer, False


def book_apart(
    db: Database,
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
    *,
    idempotency_key: str | None = None,
) -> tuple[Reservation | ReservationPublic, bool]:
    """The route's booking, in a transaction of its own on a connection taken from the pool
    (no ORM session: a session's making, its transaction and its commit hooks were 9% of the
    worker's time, docs/performance.md, fifth pass), committed and on disk before this returns;
    answers (reservation, replayed). The caches watching reservations or audit rows are emptied
    here, after the commit, before the answer leaves (`Database.committed`); a replay reads the
    earlier booking through a session of its own."""
    pooled = db.engine.raw_connection()
    try:
        earlier_id, answer = _book(pooled, user, data, now, settings, idempotency_key)
    finally:
        pooled.close()  # back to the pool (rolled back there if a refusal left a transaction)
    if earlier_id is not None:
        with db.read() as session:
            return reservation_crud.replay(session, earlier_id, data, idempotency_key), True
    db.committed(Reservation.__table__, AuditEntry.__table__)
    assert answer is not None
    return answer, False


def _book(
    pooled: PoolProxiedConnection,
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
    idempotency_key: str | None,
) -> tuple[int | None, ReservationPublic | None]:
    """The booking on `pooled`: (the id of an earlier booking with the same Idempotency-Key to
    replay, None) or (None, the new booking's answer, committed); else the refusal.

    On a connection with no transaction open the booking is judged on a lock-free read and
    written in one more round trip only if nothing it read changed (`_book_unlocked`); when
    something did, or inside a transaction already open, it is made under the locks from the
    start (`_book_locked`)."""
    if data.ends_at <= data.starts_at:
        raise InvalidTimeRange("ends_at must be after starts_at")
    raw = pooled.dbapi_connection
    assert raw is not None
    cursor = _cursor_of(pooled.info, raw)
    weeks = reservation_crud.hours_by_week(data.starts_at, data.ends_at, settings.zone)
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
    if raw not in _READY:
        try:
            _set_up(pooled, cursor, fresh)
            if fresh:
                raw.commit()  # PREPARE opened a transaction; the statements outlive it
        except psycopg.Error as exc:
            raise _dbapi_error(exc, _PREPARE, None) from exc
    earlier_id: int | None = None
    new_id: int | None = None
    if fresh:
        earlier_id, new_id = _book_unlocked(pooled, raw, cursor, params, user, data, now, settings)
    if earlier_id is None and new_id is None:
        earlier_id, new_id = _book_locked(
            pooled, raw, cursor, params, user, data, now, settings, fresh
        )
    if earlier_id is not None:
        return earlier_id, None
    assert new_id is not None
    return None, _answer(new_id, user.id, data, now, idempotency_key)


def _answer(
    new_id: int, user_id: int, data: ReservationCreate, now: datetime, key: str | None
) -> ReservationPublic:
    """The new booking's answer, as `reservations.confirmed` would make it but without the ORM
    object (18 of the 31 us the answer cost) and validated from values, not read from
    attributes; the 201 serializes it as it is."""
    return ReservationPublic(
        id=new_id,
        robot_id=data.robot_id,
        user_id=user_id,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        status=ReservationStatus.confirmed,
        purpose=data.purpose,
        created_at=now,
        updated_at=now,
        cancelled_at=None,
        cancel_reason=None,
        revision=0,
        series_id=None,
    )


def _judge(
    row: Any,
    around: list[tuple[str, datetime, datetime]],
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
) -> int | None:
    """The checks on what the booking read: the id of the user's earlier booking with the same
    Idempotency-Key (to replay), else None when the slot may be booked; else the refusal."""
    if row is None:
        raise NotFound(f"no robot {data.robot_id}")
    robot, limits, earlier_id = reservation_crud.robot_and_limits_of(row, user.role)
    if earlier_id is not None:
        return earlier_id
    query = reservation_crud.plan_slot(
        robot, user, data.starts_at, data.ends_at, now, settings, limits
    )
    # What came back is what `query` asks for: the same buffer, and the quota weeks exactly
    # when the user has an hours quota.
    rows = [r for r in around if r[0] != "q" or query.quota]
    reservation_crud.judge_slot(query, rows, robot, data.ends_at, now, settings, limits)
    return None


def _written(
    cursor: psycopg.ClientCursor[Any], statement: str, params: dict[str, Any], skip: int
) -> tuple[int, ...] | None:
    """Run `statement` (the INSERT or the conditional INSERT, after `skip` results of commands
    before it) and answer its row."""
    try:
        cursor.execute(statement, params)
        for _ in range(skip):
            cursor.nextset()
        return cast(tuple[int, ...] | None, cursor.fetchone())
    except psycopg.errors.IntegrityError as exc:  # the exclusion constraint (or the key)
        raise ReservationConflict("the robot is already booked for part of that time") from exc


def _book_unlocked(
    pooled: PoolProxiedConnection,
    raw: Any,
    cursor: psycopg.ClientCursor[Any],
    params: dict[str, Any],
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
) -> tuple[int | None, int | None]:
    """Judge on a read taken without locks, then, in one message, lock, write if nothing that
    read changed, COMMIT and wait for the durable mark; answers (earlier id to replay, new id),
    (None, None) when something changed (the caller books again under the locks).

    Why it is safe: the conditional insert reads again, after the locks were granted (in READ
    COMMITTED a statement's snapshot is taken when it starts), exactly what the checks judged
    (the robot + limits row and the colliding rows, as `READ`), and writes only when the
    hash of that text is the one judged: the checks would answer the same on what the database
    holds now, and every other booking writer of this robot or user waits for our locks until
    COMMIT. The robot's lock is held for the server's work alone. The connection runs in
    autocommit for this (no BEGIN round trip; the second message brings its own BEGIN) and is
    handed back as it came, with no transaction open."""
    statement = READ_ONCE
    raw.autocommit = True
    try:
        try:
            cursor.execute(statement, params)
        except psycopg.errors.InvalidSqlStatementName:  # deallocated by psycopg: see below
            _prepare(pooled, cursor)
            cursor.execute(statement, params)
        row = cursor.fetchone()
        around: list[tuple[str, datetime, datetime]] = []
        if row is not None and row[14] is not None:
            around = [(k, _aware(s), _aware(e)) for k, s, e in zip(*row[14:17], strict=True)]
        earlier_id = _judge(row, around, user, data, now, settings)
        if earlier_id is not None:
            return earlier_id, None
        assert row is not None
        flush = _READY.get(raw)
        statement = BOOK_IF_UNCHANGED_THEN_FLUSH if flush else BOOK_IF_UNCHANGED
        params = {
            **params,
            "purpose": data.purpose,
            "at": now,
            "detail": audit.detail_text(
                {"ends_at": data.ends_at, "robot_id": data.robot_id, "starts_at": data.starts_at}
            ),
            "seen": row[17],
        }
        # results: BEGIN, (SET,) the locks, the conditional insert
        inserted = _written(cursor, statement, params, 3 if flush else 2)
        return None, inserted[0] if inserted is not None else None
    except psycopg.Error as exc:
        raise _dbapi_error(exc, statement, params) from exc
    finally:
        _hand_back(pooled, raw)


def _hand_back(pooled: PoolProxiedConnection, raw: Any) -> None:
    """The connection out of autocommit, with no transaction open (one that failed inside the
    second message's BEGIN is rolled back); one that cannot be is dropped by the pool."""
    try:
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.rollback()
        raw.autocommit = False
    except psycopg.Error:
        pooled.invalidate()


def _book_locked(
    pooled: PoolProxiedConnection,
    raw: Any,
    cursor: psycopg.ClientCursor[Any],
    params: dict[str, Any],
    user: User,
    data: ReservationCreate,
    now: datetime,
    settings: Settings,
    fresh: bool,
) -> tuple[int | None, int | None]:
    """The booking under the locks from the start, in two round trips after BEGIN; answers
    (earlier id to replay, new id)."""
    statement = LOCK_AND_AROUND
    try:
        try:
            cursor.execute(statement, params)
        except psycopg.errors.InvalidSqlStatementName:
            # psycopg sends DEALLOCATE ALL after a ROLLBACK on a connection where it prepared
            # statements of its own (psycopg/_preparing.py), which drops ours too. Nothing was
            # done in this transaction yet (`fresh`): roll it back, prepare again, retry.
            if not fresh:
                raise
            raw.rollback()
            _prepare(pooled, cursor)
            cursor.execute(statement, params)
        row = cursor.fetchone()
        cursor.nextset()
        around = [(r[0], _aware(r[1]), _aware(r[2])) for r in cursor.fetchall()]
        earlier_id = _judge(row, around, user, data, now, settings)
        if earlier_id is not None:
            return earlier_id, None
        flush = _READY.get(raw)
        statement = INSERT_AND_COMMIT_THEN_FLUSH if flush else INSERT_AND_COMMIT
        params = {
            **params,
            "starts_at": data.starts_at,
            "ends_at": data.ends_at,
            "purpose": data.purpose,
            "at": now,
            "detail": audit.detail_text(
                {"ends_at": data.ends_at, "robot_id": data.robot_id, "starts_at": data.starts_at}
            ),
        }
        inserted = _written(cursor, statement, params, 1 if flush else 0)  # past the SET
        assert inserted is not None
        return None, inserted[0]
    except psycopg.Error as exc:
        raise _dbapi_error(exc, statement, params) from exc
