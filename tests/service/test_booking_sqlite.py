"""The SQLite booking on the write batch's raw sqlite3 connection
(raas/service/crud/booking_sqlite.py, raw jobs of raas/service/write_batch.py): each booking's
checks see the bookings before it in the same batch (a collision, the quota, the buffer; an
Idempotency-Key retry answers the first booking), a raw job that fails after writing is undone
alone, the rows read like the ORM's, the overlap trigger still stands behind the checks, and an
awaited submitter hears nothing before the commit (a failed commit fails them all). On a real
SQLite file; the booking route's cache and audit effects on both databases."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from raas.service.crud import audit, booking_sqlite
from raas.service.crud import users as user_crud
from raas.service.db import Database
from raas.service.errors import (
    BufferConflict,
    IdempotencyKeyReused,
    QuotaExceeded,
    ReservationConflict,
    ServiceError,
)
from raas.service.models import AuditEntry, Reservation, Role
from raas.service.schemas import ReservationCreate
from raas.service.settings import Settings
from raas.service.write_batch import WriteBatcher
from tests.service.harness import ApiEnv, api_env, seed, settings_for

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)  # a Monday
NOW = T0 - timedelta(days=1)
H = timedelta(hours=1)


class Env:
    def __init__(self, db: Database, settings: Settings, user: int, robot: int) -> None:
        self.db, self.settings, self.robot = db, settings, robot
        with db.read() as s:
            self.user = user_crud.get_user(s, user)
            s.expunge(self.user)

    @property
    def batcher(self) -> WriteBatcher:
        assert self.db.batcher is not None
        return self.db.batcher

    def booking(
        self, start: float, end: float, key: str | None = None, purpose: str = ""
    ) -> Callable[[Session], tuple[Reservation, bool]]:
        data = ReservationCreate(
            robot_id=self.robot, starts_at=T0 + start * H, ends_at=T0 + end * H, purpose=purpose
        )

        def job(session: Session) -> tuple[Reservation, bool]:
            return booking_sqlite.book(
                session, self.user, data, NOW, self.settings, idempotency_key=key
            )

        return job

    def in_one_batch(self, jobs: list[tuple[Callable[[Session], object], bool]]) -> list[object]:
        """Run `jobs` (each with its `raw` flag) in one batch: a blocker holds the batch thread
        until all of them wait. Answers each job's result or exception, in order."""
        entered, release = threading.Event(), threading.Event()

        def blocker(session: Session) -> None:
            entered.set()
            assert release.wait(30)

        outcomes: list[object] = [None] * len(jobs)

        def submit(i: int, job: Callable[[Session], object], raw: bool) -> None:
            try:
                outcomes[i] = self.batcher.submit(job, raw=raw)
            except Exception as exc:
                outcomes[i] = exc

        commits = _commits(self.db)
        first = threading.Thread(target=self.batcher.submit, args=(blocker,))
        first.start()
        assert entered.wait(30)
        threads = []
        for i, (job, raw) in enumerate(jobs):
            threads.append(threading.Thread(target=submit, args=(i, job, raw)))
            threads[-1].start()
            while len(self.batcher._queue) < i + 1:  # queued in this order
                threading.Event().wait(0.005)
        release.set()
        for t in [first, *threads]:
            t.join(30)
        # the blocker's batch wrote nothing (no commit); all the jobs went in one commit
        assert len(commits) == 1
        return outcomes


def _commits(db: Database) -> list[int]:
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: seen.append(1))
    return seen


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    url = f"sqlite:///{tmp_path / 'raas.db'}"
    settings = settings_for(url, tmp_path).model_copy(update={"buffer_s": 0})
    seeded = seed(settings, users={"a@lab": Role.researcher}, robots=("r1",))
    db = Database(url)
    yield Env(db, settings, seeded.users["a@lab"][0], seeded.robots["r1"])
    db.dispose()


def _rows(db: Database) -> list[Reservation]:
    with db.read() as s:
        return list(s.scalars(select(Reservation).order_by(Reservation.id)))


def _audit(db: Database) -> list[AuditEntry]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "reservation.create")
                .order_by(AuditEntry.id)
            )
        )


def test_a_collision_with_an_earlier_booking_of_the_same_batch_is_refused(env: Env) -> None:
    outcomes = env.in_one_batch(
        [
            (env.booking(1, 2), True),
            (env.booking(1.5, 2.5), True),  # overlaps the first, not yet committed
            (env.booking(2, 3), True),  # adjacent: fine
        ]
    )
    assert isinstance(outcomes[1], ReservationConflict)
    booked = [o for o in (outcomes[0], outcomes[2]) if isinstance(o, tuple)]
    assert len(booked) == 2
    rows = _rows(env.db)
    assert [(r.starts_at, r.ends_at) for r in rows] == [
        (T0 + H, T0 + 2 * H),
        (T0 + 2 * H, T0 + 3 * H),
    ]
    assert [e.target for e in _audit(env.db)] == [f"reservation:{r.id}" for r in rows]


def test_the_quota_counts_earlier_bookings_of_the_same_batch(env: Env) -> None:
    # a researcher's default quota: 20 h a week
    outcomes = env.in_one_batch([(env.booking(0, 12), True), (env.booking(12, 21), True)])
    assert isinstance(outcomes[0], tuple)
    assert isinstance(outcomes[1], QuotaExceeded)


def test_the_buffer_counts_earlier_bookings_of_the_same_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'raas.db'}"
    settings = settings_for(url, tmp_path).model_copy(update={"buffer_s": 600})
    seeded = seed(settings, users={"a@lab": Role.staff}, robots=("r1",))
    db = Database(url)
    try:
        env = Env(db, settings, seeded.users["a@lab"][0], seeded.robots["r1"])
        outcomes = env.in_one_batch([(env.booking(1, 2), True), (env.booking(2, 3), True)])
        assert isinstance(outcomes[0], tuple)
        assert isinstance(outcomes[1], BufferConflict)
    finally:
        db.dispose()


def test_an_idempotent_retry_in_the_same_batch_answers_the_first_booking(env: Env) -> None:
    outcomes = env.in_one_batch(
        [
            (env.booking(1, 2, key="k-1"), True),
            (env.booking(1, 2, key="k-1"), True),  # the retry
            (env.booking(4, 5, key="k-1"), True),  # the same key, another request
        ]
    )
    first, retry = outcomes[0], outcomes[1]
    assert isinstance(first, tuple) and isinstance(retry, tuple)
    assert first[1] is False and retry[1] is True
    assert retry[0].id == first[0].id
    assert isinstance(outcomes[2], IdempotencyKeyReused)
    assert len(_rows(env.db)) == 1
    assert len(_audit(env.db)) == 1  # a replay is not audited again


def test_rows_written_raw_read_like_the_orms(env: Env) -> None:
    # an ORM-written booking is seen by the raw checks (the same time text in the database)
    with env.db.write() as s:
        s.add(
            Reservation(
                robot_id=env.robot,
                user_id=env.user.id,
                starts_at=T0,
                ends_at=T0 + H,
                status="confirmed",
                purpose="orm",
            )
        )
    with pytest.raises(ReservationConflict):
        env.batcher.submit(env.booking(0.5, 1.5), raw=True)
    reservation, replayed = env.batcher.submit(env.booking(1, 2, purpose="raw"), raw=True)
    assert replayed is False
    [orm, raw] = _rows(env.db)
    assert orm.purpose == "orm"
    assert (raw.id, raw.starts_at, raw.ends_at, raw.purpose) == (
        reservation.id,
        T0 + H,
        T0 + 2 * H,
        "raw",
    )
    assert (raw.status, raw.created_at, raw.updated_at, raw.revision) == ("confirmed", NOW, NOW, 0)
    assert raw.idempotency_key is None and raw.series_id is None and raw.cancelled_at is None
    # the audit row is what audit.record writes
    [entry] = _audit(env.db)
    assert (entry.at, entry.actor_id, entry.target) == (NOW, env.user.id, f"reservation:{raw.id}")
    expected = {"robot_id": env.robot, "starts_at": T0 + H, "ends_at": T0 + 2 * H}
    assert entry.detail == audit.detail_text(expected)
    assert json.loads(entry.detail)["starts_at"] == str(T0 + H)


def test_a_raw_job_that_fails_after_writing_is_undone_alone(env: Env) -> None:
    def refused(session: Session) -> None:
        env.booking(6, 7)(session)  # written, then refused
        raise ReservationConflict("refused after writing")

    outcomes = env.in_one_batch(
        [(env.booking(1, 2), True), (refused, True), (env.booking(2, 3), True)]
    )
    assert isinstance(outcomes[1], ReservationConflict)
    assert [r.starts_at for r in _rows(env.db)] == [T0 + H, T0 + 2 * H]
    assert len(_audit(env.db)) == 2


def test_the_database_rule_still_stands_behind_the_raw_checks(env: Env) -> None:
    # a raw insert that skipped the checks meets the overlap trigger: ReservationConflict
    env.batcher.submit(env.booking(1, 2), raw=True)

    def sneaky(session: Session) -> None:
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        try:
            raw.execute(
                booking_sqlite.INSERT,
                (
                    env.robot,
                    env.user.id,
                    booking_sqlite.db_time(T0 + 1.5 * H),
                    booking_sqlite.db_time(T0 + 2.5 * H),
                    "",
                    booking_sqlite.db_time(NOW),
                    booking_sqlite.db_time(NOW),
                    None,
                ),
            )
        except Exception as exc:
            raise ReservationConflict(str(exc)) from exc

    with pytest.raises(ReservationConflict, match="no_overlap"):
        env.batcher.submit(sneaky, raw=True)
    assert len(_rows(env.db)) == 1


def test_awaited_submitters_hear_after_the_commit_and_fail_with_it(env: Env) -> None:
    def poison(session: Session) -> None:
        # a foreign key checked at COMMIT only: every savepoint passes, the commit fails
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        audit.record(session, None, "test.poison", "nowhere", NOW)
        session.execute(text("UPDATE audit_log SET actor_id = 999999 WHERE action = 'test.poison'"))

    async def run(with_poison: bool) -> list[object]:
        entered, release = threading.Event(), threading.Event()

        def blocker(session: Session) -> None:
            entered.set()
            assert release.wait(30)

        first = threading.Thread(target=env.batcher.submit, args=(blocker,))
        first.start()
        assert await asyncio.to_thread(entered.wait, 30)
        tasks: list[asyncio.Future[object]] = [
            asyncio.ensure_future(env.batcher.submit_async(env.booking(1, 2), raw=True))
        ]
        if with_poison:
            tasks.append(asyncio.ensure_future(env.batcher.submit_async(poison)))
        while len(env.batcher._queue) < len(tasks):
            await asyncio.sleep(0.005)
        assert not any(t.done() for t in tasks)
        release.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        first.join(30)
        return list(outcomes)

    failed = asyncio.run(run(with_poison=True))
    assert all(isinstance(o, IntegrityError) for o in failed)  # none acknowledged
    assert _rows(env.db) == []
    [ok] = asyncio.run(run(with_poison=False))
    assert isinstance(ok, tuple)
    # committed before the answer: another connection finds it at once
    [row] = _rows(env.db)
    assert row.id == ok[0].id


# -- through the route, on both databases -----------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    with client:
        yield e
    e.state.db.dispose()


def test_a_booking_empties_the_availability_cache_and_keeps_the_token_cache(api: ApiEnv) -> None:
    robot = api.seeded.robots["arm-1"]
    window = {"starts_at": api.at(timedelta(0)), "ends_at": api.at(timedelta(days=1))}
    db = api.state.db
    # PostgreSQL: the seeding's token writes reach this process as a notification that empties
    # the token cache once, at a moment of its own; read until both caches hold the entry
    deadline = time.monotonic() + 10
    while True:
        r = api.client.get(f"/robots/{robot}/availability", params=window, headers=api.h("bob@lab"))
        assert r.status_code == 200, r.text
        if len(db.availability_cache) == 1 and len(db.token_cache) == 1:
            break
        assert time.monotonic() < deadline, "the caches never held the entries"
        time.sleep(0.2)
    r = api.book("bob@lab", 2 * H, 3 * H)
    assert r.status_code == 201, r.text
    assert len(db.availability_cache) == 0  # emptied by the booking's commit
    assert len(db.token_cache) == 1  # a booking touches no token nor user
    with db.read() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "reservation.create"))
    assert entry.target == f"reservation:{r.json()['id']}"
    assert entry.actor_id == api.seeded.users["bob@lab"][0]
    assert json.loads(entry.detail) == {
        "robot_id": robot,
        "starts_at": str(datetime.fromisoformat(r.json()["starts_at"])),
        "ends_at": str(datetime.fromisoformat(r.json()["ends_at"])),
    }


def test_a_refused_booking_keeps_both_caches(api: ApiEnv) -> None:
    assert api.book("bob@lab", 2 * H, 3 * H).status_code == 201
    robot = api.seeded.robots["arm-1"]
    window = {"starts_at": api.at(timedelta(0)), "ends_at": api.at(timedelta(days=1))}
    api.client.get(f"/robots/{robot}/availability", params=window, headers=api.h("bob@lab"))
    r = api.book("bob@lab", 2 * H, 3 * H)
    assert r.status_code == 409 and r.json()["error"] == "reservation_conflict", r.text
    assert len(api.state.db.availability_cache) == 1


def test_service_errors_keep_their_type_through_the_batch(env: Env) -> None:
    with pytest.raises(ServiceError):
        env.batcher.submit(env.booking(2, 1), raw=True)


def test_a_long_booking_that_began_long_before_is_still_a_collision(env: Env) -> None:
    # the collision statement walks only the bookings starting in the (buffered) slot and the
    # last confirmed one starting before it: here a long booking, with a cancelled one after it
    env.batcher.submit(env.booking(0, 10), raw=True)
    cancelled, _ = env.batcher.submit(env.booking(11, 12), raw=True)
    with env.db.write() as s:
        row = s.get(Reservation, cancelled.id)
        assert row is not None
        row.status = "cancelled"
    env.batcher.submit(env.booking(11.5, 12.5), raw=True)  # over the cancelled one: fine
    with pytest.raises(ReservationConflict):
        env.batcher.submit(env.booking(9, 11), raw=True)  # the tail of the long one
    with pytest.raises(ReservationConflict):
        env.batcher.submit(env.booking(5, 6), raw=True)  # inside the long one
    env.batcher.submit(env.booking(10, 11), raw=True)  # just after it


def test_the_collision_statement_walks_the_robot_time_index(env: Env) -> None:
    with env.db.engine.connect() as c:
        raw = c.connection.dbapi_connection
        assert raw is not None
        plan = raw.execute(
            f"EXPLAIN QUERY PLAN {booking_sqlite.AROUND[False]}",
            {"robot_id": 1, "start": "", "end": "", "lo": "", "hi": ""},
        ).fetchall()
    details = [row[-1] for row in plan if "reservations" in row[-1]]
    assert len(details) == 2, plan
    assert all("ix_reservations_robot_time" in d and "starts_at" in d for d in details), details
