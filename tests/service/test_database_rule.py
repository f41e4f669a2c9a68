"""The database itself refuses a double booking: rows written past the application (raw SQL,
no checks, no lock) still cannot overlap. Application checks alone do not count."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from raas.service.db import Database
from raas.service.migrate import upgrade
from raas.service.models import Reservation, Role
from tests.service.harness import seed, settings_for

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _insert(db: Database, robot: int, user: int, start: datetime, end: datetime) -> int:
    with db.write() as s:
        r = Reservation(
            robot_id=robot,
            user_id=user,
            starts_at=start,
            ends_at=end,
            status="confirmed",
            purpose="",
        )
        s.add(r)
        s.flush()
        return r.id


def test_overlap_is_refused_by_the_database(database_url: str, tmp_path: Path) -> None:
    seeded = seed(
        settings_for(database_url, tmp_path), users={"a@lab": Role.researcher}, robots=("r1", "r2")
    )
    db = Database(database_url)
    try:
        user, r1, r2 = seeded.users["a@lab"][0], seeded.robots["r1"], seeded.robots["r2"]
        first = _insert(db, r1, user, T0, T0 + 2 * H)
        for start, end in [(T0, T0 + 2 * H), (T0 + H, T0 + 3 * H), (T0 - H, T0 + H / 60)]:
            with pytest.raises(IntegrityError):
                _insert(db, r1, user, start, end)
        _insert(db, r1, user, T0 + 2 * H, T0 + 3 * H)  # touching is not overlapping
        _insert(db, r2, user, T0, T0 + 2 * H)  # another robot
        # moving a booking onto another by UPDATE is refused too
        with pytest.raises(IntegrityError), db.write() as s:
            s.execute(
                update(Reservation).where(Reservation.id == first).values(ends_at=T0 + 2.5 * H)
            )
        # a cancelled booking frees its slot; reviving it onto a taken slot is refused
        with db.write() as s:
            s.execute(
                text("UPDATE reservations SET status = 'cancelled' WHERE id = :i"), {"i": first}
            )
        second = _insert(db, r1, user, T0, T0 + H)
        with pytest.raises(IntegrityError), db.write() as s:
            s.execute(
                text("UPDATE reservations SET status = 'confirmed' WHERE id = :i"), {"i": first}
            )
        with db.read() as s:
            live = s.scalars(
                select(Reservation.id).where(
                    Reservation.robot_id == r1, Reservation.status == "confirmed"
                )
            ).all()
        assert second in live and first not in live
    finally:
        db.dispose()


def test_migrations_match_the_models_and_downgrade_cleanly(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from raas.service.models import Base

    db = Database(database_url)
    try:
        upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        from alembic import command

        from raas.service.migrate import alembic_config

        command.downgrade(alembic_config(db.engine), "base")
        upgrade(db.engine)
    finally:
        db.dispose()


def test_concurrent_raw_inserts_without_application_checks(
    database_url: str, tmp_path: Path
) -> None:
    """Many sessions insert overlapping rows at once, with no checks and no robot lock: the
    database lets exactly one commit (PostgreSQL: exclusion constraint; SQLite: the trigger,
    with writers serialised by BEGIN IMMEDIATE).

    PostgreSQL may abort some of the losers with "deadlock detected" instead of an exclusion
    violation (concurrent inserts waiting on each other's index entries): that is a refusal
    too, nothing of theirs commits. The API never meets it: it locks the robot row first."""
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users={"a@lab": Role.researcher}, robots=("r1",))
    db = Database(database_url)
    user, robot = seeded.users["a@lab"][0], seeded.robots["r1"]
    n = 16
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def insert(i: int) -> None:
        start = T0 + timedelta(minutes=i)
        barrier.wait()
        try:
            _insert(db, robot, user, start, start + H)
            outcomes.append("ok")
        except IntegrityError:
            outcomes.append("refused")
        except OperationalError as exc:
            if "deadlock detected" not in str(exc):
                raise
            outcomes.append("refused")

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ok"] + ["refused"] * (n - 1)
    with db.read() as session:
        rows = session.scalars(select(Reservation).where(Reservation.robot_id == robot)).all()
    db.dispose()
    assert len(rows) == 1
