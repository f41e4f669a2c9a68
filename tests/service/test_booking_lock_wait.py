"""A PostgreSQL booking that waited for the robot's row lock judges the slot with the booking the
lock's holder committed (READ COMMITTED: the collision statement's snapshot is taken after the
lock was granted). The buffer is the decisive case, as no database rule stands behind it: a
stale read would book inside the buffer. An Idempotency-Key retry answers the first booking,
and the quota weeks are read for an hours quota only. Each test runs both ways a booking is
made: `reservations.create` (the ORM path series and moves share) and the booking route's
`booking_postgresql.book` (on a connection with no transaction open: judged on a lock-free read,
then the row locks, an insert made only if that read is unchanged, and the COMMIT in one message;
what changed is judged again under the locks). On a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from raas.service.crud import booking_postgresql
from raas.service.crud import reservations as reservation_crud
from raas.service.crud import users as user_crud
from raas.service.db import Database
from raas.service.errors import (
    BufferConflict,
    IdempotencyKeyReused,
    QuotaExceeded,
    ReservationConflict,
)
from raas.service.models import Reservation, Robot, Role
from raas.service.schemas import QuotaUpdate, ReservationCreate, ReservationPublic
from raas.service.settings import Settings
from tests.service.harness import seed, settings_for
from tests.service.pg_server import PgServer

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
NOW = T0 - timedelta(days=1)
H = timedelta(hours=1)


class Env:
    def __init__(
        self, db: Database, settings: Settings, user: int, robot: int, path: str = "crud"
    ) -> None:
        self.db, self.settings, self.robot, self.path = db, settings, robot, path
        with db.read() as s:
            self.user = user_crud.get_user(s, user)
            s.expunge(self.user)

    def book(
        self, start: float, end: float, key: str | None = None
    ) -> tuple[Reservation | ReservationPublic, bool]:
        data = ReservationCreate(
            robot_id=self.robot, starts_at=T0 + start * H, ends_at=T0 + end * H
        )
        with self.db.write() as session:
            if self.path == "route":
                return booking_postgresql.book(
                    session, self.user, data, NOW, self.settings, idempotency_key=key
                )
            return reservation_crud.create(
                session, self.user, data, NOW, self.settings, idempotency_key=key
            )


@pytest.fixture(params=["crud", "route"])
def env(pg_server: PgServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    url = pg_server.create_database(f"raas_lockwait_{time.monotonic_ns()}")
    settings = settings_for(url, tmp_path).model_copy(update={"buffer_s": 600})
    seeded = seed(settings, users={"a@lab": Role.researcher}, robots=("r1",))
    db = Database(url)
    yield Env(db, settings, seeded.users["a@lab"][0], seeded.robots["r1"], request.param)
    db.dispose()


def _waiting_on_a_lock(db: Database) -> int:
    with db.engine.connect() as c:
        return int(
            c.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize(
    ("second", "refusal"),
    [((1.5, 2.5), ReservationConflict), ((2, 3), BufferConflict)],
    ids=["overlap", "inside-the-buffer"],
)
def test_the_checks_see_the_booking_of_the_writer_they_waited_for(
    env: Env, second: tuple[float, float], refusal: type[Exception]
) -> None:
    outcome: list[object] = []

    def book_second() -> None:
        try:
            outcome.append(env.book(*second))
        except Exception as exc:
            outcome.append(exc)

    with env.db.write() as holder:
        # the robot's row lock, as every booking writer takes it, then a booking not yet committed
        holder.scalars(select(Robot.id).where(Robot.id == env.robot).with_for_update()).one()
        holder.add(
            Reservation(
                robot_id=env.robot,
                user_id=env.user.id,
                starts_at=T0 + H,
                ends_at=T0 + 2 * H,
                status="confirmed",
                purpose="first",
            )
        )
        holder.flush()
        thread = threading.Thread(target=book_second)
        thread.start()
        deadline = time.monotonic() + 30
        while _waiting_on_a_lock(env.db) == 0:  # it waits for the robot's row lock
            assert time.monotonic() < deadline, "the second booking never waited for the lock"
            time.sleep(0.02)
        # committed here, while the second booking waits for the lock
    thread.join(30)
    [result] = outcome
    assert isinstance(result, refusal), result
    assert result.__cause__ is None  # the application's answer, not the constraint's
    with env.db.read() as s:
        assert [r.purpose for r in s.scalars(select(Reservation))] == ["first"]


def test_a_booking_writes_its_row_and_a_retry_replays(env: Env) -> None:
    first, replayed = env.book(1, 2, key="k-1")
    assert replayed is False
    again, replayed = env.book(1, 2, key="k-1")
    assert replayed is True and again.id == first.id
    with pytest.raises(IdempotencyKeyReused):
        env.book(3, 4, key="k-1")
    with env.db.read() as s:
        [row] = s.scalars(select(Reservation))
    assert (row.id, row.starts_at, row.ends_at, row.created_at) == (
        first.id,
        T0 + H,
        T0 + 2 * H,
        NOW,
    )


def test_the_quota_weeks_are_read_only_for_an_hours_quota(env: Env) -> None:
    # a researcher's default: 20 h a week
    env.book(0, 12)
    with pytest.raises(QuotaExceeded):
        env.book(13, 22)
    with env.db.write() as s:
        user_crud.set_quota(s, user_crud.get_user(s, env.user.id), QuotaUpdate())
    env.book(13, 22)
