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

A job submitted with `raw=True` promises to write through the session's sqlite3 connection only
(no ORM object added or changed; reads through the session are fine): its savepoint is plain
SQL (`SAVEPOINT` / `RELEASE` / `ROLLBACK TO`), without the session's nested-transaction
bookkeeping. `submit` blocks its thread until the commit; `submit_async` awaits it on the
event loop instead (no thread of the pool waits for the batch), and the answers of one batch
reach their loop in one wake-up.

Used for bookings on SQLite (docs/performance.md, "Group commit"); PostgreSQL writers run in
parallel on their own row locks and are not batched.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

#: Most jobs in one transaction: bounds how long the first of them waits for the commit.
MAX_JOBS = 64


@dataclass(eq=False)
class _Job(Generic[T]):
    run: Callable[[Session], T]
    raw: bool = False
    #: Set for `submit` (a thread waits on it); None for `submit_async`.
    done: threading.Event | None = field(default_factory=threading.Event)
    #: Set for `submit_async`: settled on its loop once the batch is over.
    future: asyncio.Future[Any] | None = None
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

    def submit(self, run: Callable[[Session], T], *, raw: bool = False) -> T:
        """Run `run(session)` in a write transaction; answer its result once committed, or
        raise what it raised (or what the commit raised). `raw`: see the module's doc."""
        job: _Job[T] = _Job(run, raw)
        self._enqueue(job)
        assert job.done is not None
        job.done.wait()
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    async def submit_async(self, run: Callable[[Session], T], *, raw: bool = False) -> T:
        """`submit`, awaited on the running event loop instead of blocking a thread."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(run, raw, done=None, future=future))
        return await future

    def _enqueue(self, job: _Job[Any]) -> None:
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
                    if job.raw:
                        self._run_raw(session, job)
                    else:
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
            settle: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
            for job in batch:
                if job not in ran and job.error is None:
                    job.error = RuntimeError("the write batch stopped before this job ran")
                if job.done is not None:
                    job.done.set()
                elif job.future is not None:
                    settle.setdefault(job.future.get_loop(), []).append(job)
            for loop, jobs in settle.items():
                # RuntimeError: the loop is closed, nobody waits for these answers
                with suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, jobs)

    @staticmethod
    def _run_raw(session: Session, job: _Job[Any]) -> None:
        """Run a raw job inside a plain-SQL savepoint of the batch's transaction. A job's
        refusal rolls back to the savepoint; a savepoint statement that fails fails the batch."""
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        raw.execute("SAVEPOINT raas_job")
        try:
            job.result = job.run(session)
        except Exception as exc:  # the job's refusal, for its submitter
            job.error = exc
            raw.execute("ROLLBACK TO raas_job")
        raw.execute("RELEASE raas_job")


def _settle(jobs: list[_Job[Any]]) -> None:
    """On the submitters' loop: hand each job its answer (unless its waiter gave up)."""
    for job in jobs:
        future = job.future
        if future is None or future.done():
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)
