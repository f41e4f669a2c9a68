"""Engine and sessions.

SQLite: WAL journal, `synchronous=FULL` (a commit is on disk before the answer goes out),
foreign keys on, a generous busy timeout. Transactions begin IMMEDIATE (the database write
lock is taken before anything is read) unless the session was made for reading only; that is
what makes check-then-insert atomic on SQLite. Writers of one process queue on a lock first.
PostgreSQL needs none of this: there the exclusion constraint decides, and writers lock the
robot row. Its pooled connections are pinged on checkout unless they were returned to the pool
less than `PING_AFTER_IDLE_S` ago (`_configure_postgresql`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from raas.service.commit_cache import CommitCache
from raas.service.models import JobAttempt, MaintenanceBlock, Reservation, Robot
from raas.service.token_cache import TokenCache
from raas.service.write_batch import WriteBatcher

SQLITE_BUSY_TIMEOUT_S = 60.0
#: Connections kept open. Sized to the request thread pool (anyio's default is 40 threads):
#: a connection made beyond the pool is closed again when returned, and opening one costs its
#: PRAGMAs (SQLite) or a TCP handshake and authentication (PostgreSQL) on the request's time.
POOL_SIZE = 40
MAX_OVERFLOW = 10
#: PostgreSQL: a pooled connection returned less than this long ago (seconds) is handed out
#: without a ping (see `_configure_postgresql`).
PING_AFTER_IDLE_S = 1.0


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=60, pool_pre_ping=True
    )
    if parsed.get_backend_name() == "postgresql":
        _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: Engine) -> None:
    """Ping a pooled connection on checkout only when it sat in the pool for
    `PING_AFTER_IDLE_S` or longer (or psycopg already knows it broken).

    The pre-ping (an empty statement, a round trip, and with psycopg the BEGIN before it a
    round trip of its own) is what replaces a connection the server dropped while it sat in the
    pool (a restart, an idle timeout) before a request meets it. A connection returned a moment
    ago was working a moment ago: under load every checkout is one, and its ping was one round
    trip in seven of a booking (docs/performance.md, "The create-booking path"). A server that
    goes away within that second fails the requests using it, as it fails the requests in
    flight: 503 `database_busy`, and the pool is renewed."""
    returned: WeakKeyDictionary[Any, float] = WeakKeyDictionary()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            returned[dbapi_connection] = time.monotonic()

    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        at = returned.get(dbapi_connection)
        if (
            at is not None
            and time.monotonic() - at < PING_AFTER_IDLE_S
            and not getattr(dbapi_connection, "broken", False)
        ):
            return True
        return ping(dbapi_connection)

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    # Writers of this process queue on a lock before BEGIN IMMEDIATE: SQLite's busy handler
    # retries with growing sleeps (a lottery with a long tail under contention), a lock is a
    # queue. Writers in other processes still meet the busy handler.
    write_lock = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        raw = connection.connection.dbapi_connection
        if mode == "IMMEDIATE":
            write_lock.acquire()
            holders.add(id(raw))
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            _release(raw)
            raise

    holders: set[int] = set()  # ids of the sqlite3 connections holding `write_lock`

    def _release(connection: Any) -> None:
        raw = getattr(connection, "dbapi_connection", connection)
        if id(raw) in holders:
            holders.discard(id(raw))
            write_lock.release()

    # The lock is held until COMMIT (or ROLLBACK) has returned, so the fsync of one writer's
    # commit is inside the queue. SQLAlchemy's "commit" and "rollback" events fire before the
    # statement runs: releasing there let the next writer's BEGIN IMMEDIATE meet the commit
    # still in progress and fall into the busy handler's sleeps (1, 2, 5, 10 ... ms). The
    # dialect's do_commit/do_rollback are what run the statements (called by the Connection
    # and by the pool's reset-on-return, with the pooled or the raw sqlite3 connection).
    dialect = engine.dialect
    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, _releasing(getattr(dialect, name), _release))


def _releasing(run: Callable[[Any], None], release: Callable[[Any], None]) -> Callable[[Any], None]:
    def wrapped(dbapi_connection: Any) -> None:
        try:
            run(dbapi_connection)
        finally:
            release(dbapi_connection)

    return wrapped


class Database:
    """An engine with two session factories: writers (BEGIN IMMEDIATE on SQLite) and readers."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.writer = sessionmaker(self.engine, expire_on_commit=False)
        self.reader = sessionmaker(
            self.engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )
        #: Authenticated tokens (raas/service/token_cache.py), emptied by commits touching them.
        self.token_cache = TokenCache()
        #: Availability answers (JSON) by (robot id, start, end), emptied by commits touching
        #: reservations, maintenance blocks, robots or job attempts (raas/service/commit_cache.py).
        self.availability_cache: CommitCache[tuple[int, datetime, datetime], bytes] = CommitCache(
            (Reservation, MaintenanceBlock, Robot, JobAttempt), max_entries=1024
        )
        for cache in (self.token_cache, self.availability_cache):
            cache.watch(self.writer)
            cache.watch(self.reader)
        #: SQLite: writes submitted together share one transaction and one commit
        #: (raas/service/write_batch.py); None on PostgreSQL.
        self.batcher = WriteBatcher(self.writer) if self.sqlite else None

    def committed(self, *tables: Any) -> None:
        """Writes to `tables` were committed on a pool connection outside any session: the
        caches watching one of them are emptied now (`CommitCache.committed`)."""
        for cache in (self.token_cache, self.availability_cache):
            cache.committed(*tables)

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.engine.dispose()
