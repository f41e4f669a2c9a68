"""The PostgreSQL booking path (raas/service/crud/booking_postgresql.py) and the pool's ping
(raas/service/db.py): prepared statements that survive psycopg's DEALLOCATE ALL, the rows and
the audit entry a booking writes, the cache it empties, a connection that sat idle is still
pinged, and the route's booking (`book_apart`: a pool connection, no session) commits, replays,
refuses, hands its connection back clean and judges again what changed after its lock-free
read. On a real PostgreSQL server; the lock-wait cases are in test_booking_lock_wait.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, text

from raas.service import db as db_module
from raas.service.crud import booking_postgresql
from raas.service.crud import users as user_crud
from raas.service.db import Database
from raas.service.errors import (
    BufferConflict,
    IdempotencyKeyReused,
    MaintenanceConflict,
    ReservationConflict,
)
from raas.service.models import AuditEntry, Reservation, Role, User
from raas.service.schemas import ReservationCreate, ReservationPublic
from raas.service.settings import Settings
from tests.conftest import require
from tests.service.harness import seed, settings_for
from tests.service.pg_server import PgServer, start_pg_server, unavailable_reason

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
NOW = T0 - timedelta(days=1)
H = timedelta(hours=1)


class Env:
    def __init__(self, db: Database, settings: Settings, user: User, robot: int) -> None:
        self.db, self.settings, self.user, self.robot = db, settings, user, robot

    def book(self, start: float, end: float) -> Reservation | ReservationPublic:
        data = ReservationCreate(
            robot_id=self.robot, starts_at=T0 + start * H, ends_at=T0 + end * H, purpose="p"
        )
        with self.db.write() as session:
            reservation, replayed = booking_postgresql.book(
                session, self.user, data, NOW, self.settings
            )
        assert not replayed
        return reservation


@pytest.fixture
def env(pg_server: PgServer, tmp_path: Path) -> Iterator[Env]:
    url = pg_server.create_database(f"raas_pgbook_{time.monotonic_ns()}")
    settings = settings_for(url, tmp_path).model_copy(update={"buffer_s": 600})
    seeded = seed(settings, users={"a@lab": Role.researcher}, robots=("r1",))
    db = Database(url)
    with db.read() as s:
        user = user_crud.get_user(s, seeded.users["a@lab"][0])
        s.expunge(user)
    yield Env(db, settings, user, seeded.robots["r1"])
    db.dispose()


def _prepared_by_psycopg(env: Env) -> None:
    """Make psycopg prepare statements of its own on the pool's connection (it does after the
    fifth execution of the same statement), so that a ROLLBACK makes it DEALLOCATE ALL."""
    for _ in range(6):
        with env.db.read() as s:
            s.execute(select(User.id).where(User.id == env.user.id)).one()


def test_a_booking_writes_its_row_and_its_audit_entry(env: Env) -> None:
    made = env.book(1, 2)
    with env.db.read() as s:
        [row] = s.scalars(select(Reservation))
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "reservation.create"))
    assert (row.id, row.starts_at, row.ends_at, row.purpose, row.created_at) == (
        made.id,
        T0 + H,
        T0 + 2 * H,
        "p",
        NOW,
    )
    assert (entry.target, entry.actor_id, entry.at) == (f"reservation:{made.id}", env.user.id, NOW)
    assert '"robot_id": ' in entry.detail and str(T0 + H) in entry.detail


def test_refusals_leave_nothing_and_later_bookings_still_run(env: Env) -> None:
    """A refusal rolls back; psycopg then deallocates every prepared statement of the
    connection, ours included: the next booking prepares them again."""
    _prepared_by_psycopg(env)
    env.book(1, 2)
    with pytest.raises(ReservationConflict):
        env.book(1.5, 2.5)
    with pytest.raises(BufferConflict):
        env.book(2, 3)
    env.book(4, 5)  # failed with "prepared statement does not exist" before the retry
    _prepared_by_psycopg(env)
    with pytest.raises(ReservationConflict):
        env.book(4, 5)
    env.book(6, 7)
    with env.db.read() as s:
        starts = [r.starts_at for r in s.scalars(select(Reservation).order_by(Reservation.id))]
        audited = s.scalar(
            select(text("count(*)"))
            .select_from(AuditEntry)
            .where(AuditEntry.action == "reservation.create")
        )
    assert starts == [T0 + H, T0 + 4 * H, T0 + 6 * H]
    assert audited == 3


def test_a_booking_empties_the_availability_cache(env: Env) -> None:
    cache = env.db.availability_cache
    key = (env.robot, T0, T0 + 24 * H)
    cache.put(key, b"{}", cache.generation)
    assert cache.get(key) == b"{}"
    env.book(1, 2)
    assert cache.get(key) is None


def test_a_connection_idle_longer_than_the_ping_window_is_pinged(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server drops the pool's connections while they sit idle: a checkout after the
    ping window pings, finds the connection dead and replaces it (the request succeeds)."""
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.05)
    env.book(1, 2)
    url = env.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as c:  # not one of the pool's
        killed = c.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    time.sleep(0.2)
    env.book(3, 4)  # a dead connection handed out without a ping fails here


@pytest.mark.slow
def test_acknowledged_bookings_survive_a_server_crash(tmp_path: Path) -> None:
    """The booking's own commit does not wait for its WAL flush (the robot's lock is released
    before the fsync); the durable mark after it does. A server killed right after the answers
    (`pg_ctl stop -m immediate`: its WAL buffers in shared memory are lost) still has every
    acknowledged booking when it starts again. The WAL writer is slowed to 10 s so that nothing
    but the mark flushes the bookings' commits."""
    require("PostgreSQL", unavailable_reason() is None, unavailable_reason() or "")
    pg = start_pg_server(durable=True)
    try:
        pg.psql("ALTER SYSTEM SET wal_writer_delay = '10s'")
        pg.psql("SELECT pg_reload_conf()")
        url = pg.create_database("raas_crash")
        settings = settings_for(url, tmp_path).model_copy(update={"buffer_s": 0})
        seeded = seed(settings, users={"a@lab": Role.admin}, robots=("r1",))
        db = Database(url)
        with db.read() as s:
            user = user_crud.get_user(s, seeded.users["a@lab"][0])
            s.expunge(user)
        env = Env(db, settings, user, seeded.robots["r1"])
        made = [env.book(i, i + 1).id for i in range(8)]
        assert booking_postgresql._READY and all(booking_postgresql._READY.values())
        db.dispose()
        pg.run("pg_ctl", "stop", "-D", str(pg.datadir), "-m", "immediate", "-w")
        options = (
            f"-p {pg.port} -c listen_addresses=127.0.0.1 -k {pg.sockdir} "
            "-c max_connections=150 -c TimeZone=UTC"
        )
        pg.run("pg_ctl", "start", "-D", str(pg.datadir), "-l", str(pg.logfile), "-o", options, "-w")
        after = Database(url)
        try:
            with after.read() as s:
                kept = sorted(s.scalars(select(Reservation.id)))
        finally:
            after.dispose()
        assert kept == sorted(made)
    finally:
        pg.stop()


# -- the route's booking: a pool connection, no session (booking_postgresql.book_apart) -------


def _book_apart(env: Env, start: float, end: float, key: str | None = None) -> tuple[Any, bool]:
    data = ReservationCreate(
        robot_id=env.robot, starts_at=T0 + start * H, ends_at=T0 + end * H, purpose="p"
    )
    return booking_postgresql.book_apart(
        env.db, env.user, data, NOW, env.settings, idempotency_key=key
    )


def test_the_route_booking_commits_audits_and_empties_the_availability_cache(env: Env) -> None:
    cache = env.db.availability_cache
    key = (env.robot, T0, T0 + 24 * H)
    cache.put(key, b"{}", cache.generation)
    made, replayed = _book_apart(env, 1, 2)
    assert replayed is False
    assert cache.get(key) is None  # emptied before the answer is returned
    with env.db.read() as s:
        [row] = s.scalars(select(Reservation))
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "reservation.create"))
    assert (row.id, row.starts_at, row.ends_at, row.purpose) == (made.id, T0 + H, T0 + 2 * H, "p")
    assert entry.target == f"reservation:{made.id}"


def test_the_route_booking_replays_refuses_and_hands_its_connection_back_clean(env: Env) -> None:
    first, _ = _book_apart(env, 1, 2, key="k-1")
    again, replayed = _book_apart(env, 1, 2, key="k-1")
    assert replayed is True and again.id == first.id
    with pytest.raises(IdempotencyKeyReused):
        _book_apart(env, 3, 4, key="k-1")
    with pytest.raises(BufferConflict):
        _book_apart(env, 2, 3)
    # the pool's connections come back out of autocommit with no transaction open: a session's
    # rolled-back write leaves nothing behind
    with env.db.writer() as s:
        s.execute(text("UPDATE robots SET name = 'renamed'"))
        s.rollback()
    with env.db.read() as s:
        assert s.scalar(text("SELECT count(*) FROM robots WHERE name = 'renamed'")) == 0
    _book_apart(env, 4, 5)
    with env.db.read() as s:
        assert s.scalar(text("SELECT count(*) FROM reservations")) == 2


def test_a_change_between_the_read_and_the_locks_is_judged_again(env: Env) -> None:
    """The route's booking judges a lock-free read; a maintenance block committed after that
    read (here: while the booking waits for the robot's lock) changes what the conditional
    insert reads again, so nothing is written and the booking is judged again under the locks."""
    outcome: list[object] = []

    def book() -> None:
        try:
            outcome.append(_book_apart(env, 1, 2))
        except Exception as exc:
            outcome.append(exc)

    with env.db.write() as holder:
        holder.execute(text("SELECT id FROM robots WHERE id = :r FOR UPDATE"), {"r": env.robot})
        thread = threading.Thread(target=book)
        thread.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(env):
            assert time.monotonic() < deadline, "the booking never waited for the lock"
            time.sleep(0.02)
        holder.execute(
            text(
                "INSERT INTO maintenance_blocks (robot_id, starts_at, ends_at, reason,"
                " created_by, created_at) VALUES (:r, :s, :e, 'oil', :u, :s)"
            ),
            {"r": env.robot, "s": T0, "e": T0 + 3 * H, "u": env.user.id},
        )
    thread.join(30)
    [result] = outcome
    assert isinstance(result, MaintenanceConflict), result
    with env.db.read() as s:
        assert s.scalar(text("SELECT count(*) FROM reservations")) == 0


def _waiting_on_a_lock(env: Env) -> bool:
    with env.db.engine.connect() as c:
        waiting = c.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
        ).scalar_one()
    return bool(waiting)
