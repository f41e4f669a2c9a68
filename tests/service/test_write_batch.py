"""Group commit (raas/service/write_batch.py): jobs that wait together share one transaction and
one commit; a job that fails is undone alone; nobody hears "done" before the commit that holds
their write, and a commit that fails fails every job in it. On a real SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from raas.service.crud import audit
from raas.service.db import Database
from raas.service.errors import ReservationConflict
from raas.service.models import AuditEntry, Reservation, Role
from tests.service.harness import seed, settings_for

T0 = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Database, int, int]]:
    url = f"sqlite:///{tmp_path / 'raas.db'}"
    seeded = seed(settings_for(url, tmp_path), users={"a@lab": Role.researcher}, robots=("r1",))
    db = Database(url)
    yield db, seeded.users["a@lab"][0], seeded.robots["r1"]
    db.dispose()


def _booking(robot: int, user: int, hour: int) -> Reservation:
    return Reservation(
        robot_id=robot,
        user_id=user,
        starts_at=T0 + hour * H,
        ends_at=T0 + (hour + 1) * H,
        status="confirmed",
        purpose=f"hour {hour}",
    )


Job = Callable[[Session], object]


def _insert(robot: int, user: int, hour: int) -> Callable[[Session], int]:
    def job(session: Session) -> int:
        row = _booking(robot, user, hour)
        session.add(row)
        session.flush()
        return row.id

    return job


def _purposes(db: Database) -> set[str]:
    with db.read() as s:
        return set(s.scalars(select(Reservation.purpose)))


def _commits(db: Database) -> list[int]:
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: seen.append(1))
    return seen


def test_jobs_waiting_together_share_one_commit(setup: tuple[Database, int, int]) -> None:
    db, user, robot = setup
    batcher = db.batcher
    assert batcher is not None
    commits = _commits(db)
    entered, release = threading.Event(), threading.Event()

    def blocker(session: Session) -> int:
        entered.set()
        assert release.wait(30)
        return _insert(robot, user, 0)(session)

    results: dict[int, object] = {}

    def submit(hour: int, job: Job) -> None:
        results[hour] = batcher.submit(job)

    first = threading.Thread(target=submit, args=(0, blocker))
    first.start()
    assert entered.wait(30)
    # ten more arrive while the first batch runs: they wait, then go in one transaction
    others = [
        threading.Thread(target=submit, args=(h, _insert(robot, user, h))) for h in range(1, 11)
    ]
    for t in others:
        t.start()
    while len(batcher._queue) < 10:
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(30)
    assert len(commits) == 2  # the first job's transaction, then the ten together
    assert sorted(results) == list(range(11))
    assert len(set(results.values())) == 11  # eleven rows, eleven ids
    assert _purposes(db) == {f"hour {h}" for h in range(11)}


def test_a_failing_job_is_undone_alone(setup: tuple[Database, int, int]) -> None:
    db, user, robot = setup
    batcher = db.batcher
    assert batcher is not None
    entered, release = threading.Event(), threading.Event()

    def blocker(session: Session) -> None:
        entered.set()
        assert release.wait(30)

    def refused(session: Session) -> None:
        _insert(robot, user, 5)(session)
        raise ReservationConflict("refused after writing")

    outcomes: dict[str, object] = {}

    def submit(name: str, job: Job) -> None:
        try:
            outcomes[name] = batcher.submit(job)
        except Exception as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=submit, args=("blocker", blocker))]
    threads[0].start()
    assert entered.wait(30)
    jobs: tuple[tuple[str, Job], ...] = (
        ("a", _insert(robot, user, 1)),
        ("refused", refused),
        ("overlap", _insert(robot, user, 1)),  # the database rule refuses it: a itself is kept
        ("c", _insert(robot, user, 2)),
    )
    for name, job in jobs:
        threads.append(threading.Thread(target=submit, args=(name, job)))
        threads[-1].start()
        while len(batcher._queue) < len(threads) - 1:
            threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(30)
    assert isinstance(outcomes["refused"], ReservationConflict)
    assert isinstance(outcomes["overlap"], IntegrityError)
    assert isinstance(outcomes["a"], int) and isinstance(outcomes["c"], int)
    assert _purposes(db) == {"hour 1", "hour 2"}


def test_the_answer_comes_after_the_commit(setup: tuple[Database, int, int]) -> None:
    db, user, robot = setup
    batcher = db.batcher
    assert batcher is not None
    new_id = batcher.submit(_insert(robot, user, 3))
    # another connection (another process would see the same) finds the row at once
    with db.engine.connect() as other:
        count = other.execute(
            select(func.count()).select_from(Reservation).where(Reservation.id == new_id)
        ).scalar_one()
    assert count == 1


def test_a_failed_commit_fails_every_job_in_it(setup: tuple[Database, int, int]) -> None:
    db, user, robot = setup
    batcher = db.batcher
    assert batcher is not None
    entered, release = threading.Event(), threading.Event()

    def blocker(session: Session) -> None:
        entered.set()
        assert release.wait(30)

    def poison(session: Session) -> None:
        # a foreign key checked at COMMIT only: every savepoint passes, the commit fails
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        audit.record(session, None, "test.poison", "nowhere", datetime.now(UTC))
        session.execute(text("UPDATE audit_log SET actor_id = 999999 WHERE action = 'test.poison'"))

    outcomes: dict[str, object] = {}

    def submit(name: str, job: Job) -> None:
        try:
            outcomes[name] = batcher.submit(job)
        except Exception as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=submit, args=("blocker", blocker))]
    threads[0].start()
    assert entered.wait(30)
    jobs: tuple[tuple[str, Job], ...] = (("good", _insert(robot, user, 1)), ("poison", poison))
    for name, job in jobs:
        threads.append(threading.Thread(target=submit, args=(name, job)))
        threads[-1].start()
        while len(batcher._queue) < len(threads) - 1:
            threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(30)
    assert isinstance(outcomes["good"], IntegrityError)  # never acknowledged
    assert isinstance(outcomes["poison"], IntegrityError)
    assert _purposes(db) == set()
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
