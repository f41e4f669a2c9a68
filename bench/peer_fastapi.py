"""The peer of the service benchmark: the same two endpoints in bare FastAPI.

Same framework, same uvicorn settings, same request and response shapes (pydantic models, sync
handlers run in the thread pool as the service's are), no authentication and no rules:
  availability   answers at once (the "bare FastAPI GET" of issue 16)
  booking        inserts the booking as one row into a SQLite file with the service's durability
                 (WAL, synchronous=FULL, BEGIN IMMEDIATE behind one process-wide lock, commit
                 before the 201), through the standard library's sqlite3: "bare FastAPI + the
                 same one-row insert, same durability"
The database is `$PEER_DATABASE` (a temporary file when unset); with `$PEER_DATABASE_URL`
(`postgresql://...`, the benchmark's `--db postgresql`) the row goes into that PostgreSQL
database instead, through psycopg 3 (the service's driver), one connection per thread, committed
before the 201 with the server's durability (no process lock: PostgreSQL takes row locks). What
the service costs beyond this is what raas itself adds: authentication, the ORM, the booking
rules, the audit row.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, status
from pydantic import BaseModel


class BusyInterval(BaseModel):
    starts_at: datetime
    ends_at: datetime
    kind: Literal["reservation", "maintenance"]


class Availability(BaseModel):
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    bookable: bool
    busy: list[BusyInterval]


class ReservationCreate(BaseModel):
    robot_id: int
    starts_at: datetime
    ends_at: datetime
    purpose: str = ""


class ReservationPublic(ReservationCreate):
    id: int
    user_id: int
    status: str
    created_at: datetime


SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    robot_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    status TEXT NOT NULL,
    purpose TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


class Store:
    """One connection per thread to one SQLite file, as durable as the service's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()
        self.write_lock = threading.Lock()
        self.connection().execute(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            self.local.conn = conn
        return conn

    def insert(self, body: ReservationCreate, created_at: datetime) -> int:
        conn = self.connection()
        with self.write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO reservations (robot_id, user_id, starts_at, ends_at, status,"
                    " purpose, created_at) VALUES (?, 1, ?, ?, 'confirmed', ?, ?)",
                    (
                        body.robot_id,
                        body.starts_at.isoformat(),
                        body.ends_at.isoformat(),
                        body.purpose,
                        created_at.isoformat(),
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(cur.lastrowid or 0)


PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (
    id BIGSERIAL PRIMARY KEY,
    robot_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    starts_at TIMESTAMPTZ NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    purpose TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
)
"""


class PgStore:
    """One psycopg connection per thread to one PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()
        conn = self.connection()
        conn.execute(PG_SCHEMA)
        conn.commit()

    def connection(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            import psycopg

            conn = psycopg.connect(self.url)
            self.local.conn = conn
        return conn

    def insert(self, body: ReservationCreate, created_at: datetime) -> int:
        conn = self.connection()
        try:
            row = conn.execute(
                "INSERT INTO reservations (robot_id, user_id, starts_at, ends_at, status,"
                " purpose, created_at) VALUES (%s, 1, %s, %s, 'confirmed', %s, %s)"
                " RETURNING id",
                (body.robot_id, body.starts_at, body.ends_at, body.purpose, created_at),
            ).fetchone()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return int(row[0])


def create_app() -> FastAPI:
    app = FastAPI(title="bare peer")
    url = os.environ.get("PEER_DATABASE_URL")
    given = os.environ.get("PEER_DATABASE")
    store: Store | PgStore
    if url:
        store = PgStore(url)
    else:
        store = Store(Path(given) if given else Path(tempfile.mkdtemp()) / "peer.db")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/robots/{robot_id}/availability")
    def availability(robot_id: int, starts_at: datetime, ends_at: datetime) -> Availability:
        return Availability(
            robot_id=robot_id, starts_at=starts_at, ends_at=ends_at, bookable=True, busy=[]
        )

    @app.post("/reservations", status_code=status.HTTP_201_CREATED)
    def reserve(body: ReservationCreate) -> ReservationPublic:
        created_at = datetime.now(UTC)
        return ReservationPublic(
            **body.model_dump(),
            id=store.insert(body, created_at),
            user_id=1,
            status="confirmed",
            created_at=created_at,
        )

    return app
