"""Group commit: writes that arrive together share one transaction and one durable commit.

On SQLite every writer of the process queues on one write lock (raas/service/db.py), and each
transaction pays BEGIN IMMEDIATE, COMMIT and its fsync alone, with the lock handed from thread to
thread in between. A `WriteBatcher` runs the submitted jobs in a thread of its own instead: it
takes every job waiting at that moment (up to `max_jobs`), runs each inside a SAVEPOINT of one
write transaction and commits once; only then does each submitter get its answer. So:

- a job sees the rows of the jobs before it in the batch (the booking checks, and the database
  rule behind them, hold as if the jobs ran one after the other);
- a job that raises is rolled back to its savepoint alone and its exception goes to its
  submitter; the others are committed;
- nothing is acknowledged before the COMMIT that holds it has returned (a commit that fails
  fails every job of the batch, none of them is acknowledged);
- commit-invalidated caches (raas/service/commit_cache.py) are emptied inside that commit,
  before any submitter answers.

Used for bookings on SQLite (docs/performance.md, "Group commit"); PostgreSQL writers run in
parallel on their own row locks and are not batched.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

#: Most jobs in one transaction: bounds how long the first of them waits for the commit.
MAX_JOBS = 64


@dataclass(eq=False)
class _Job(Generic[T]):
    run: Callable[[Session], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class WriteBatcher:
    """Runs `submit`ted jobs in its own thread, the jobs waiting together in one transaction."""

    def __init__(self, factory: sessionmaker[Session], max_jobs: int = MAX_JOBS) -> None:
        self._factory = factory
        self._max_jobs = max_jobs
        self._queue: deque[_Job[Any]] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, run: Callable[[Session], T]) -> T:
        """Run `run(session)` in a write transaction; answer its result once committed, or
        raise what it raised (or what the commit raised)."""
        job: _Job[T] = _Job(run)
        with self._wake:
            if self._closed:
                raise RuntimeError("the write batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="raas-write-batch", daemon=True
                )
                self._thread.start()
            self._queue.append(job)
            self._wake.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def close(self) -> None:
        """Finish the jobs already submitted, then stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._max_jobs))
                ]
            self._run(batch)

    def _run(self, batch: list[_Job[Any]]) -> None:
        ran: list[_Job[Any]] = []
        try:
            with self._factory() as session, session.begin():
                for job in batch:
                    try:
                        with session.begin_nested():
                            job.result = job.run(session)
                    except Exception as exc:  # the job's refusal, for its submitter
                        job.error = exc
                    ran.append(job)
                # session.begin() commits here; the answers wait for it
        except BaseException as exc:  # the commit (or a savepoint) failed: nothing is kept
            for job in batch:
                job.result, job.error = None, exc
        finally:
            for job in batch:
                if job not in ran and job.error is None:
                    job.error = RuntimeError("the write batch stopped before this job ran")
                job.done.set()
