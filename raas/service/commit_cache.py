"""A per-process cache emptied by every commit that changed the rows it was built from.

The service's sessions (both factories of `raas.service.db.Database`) are watched: a commit
whose flush added, changed or deleted an instance of one of the `watched` models, or that ran
through the session an INSERT/UPDATE/DELETE on one of their tables or any other statement that
is not a SELECT (raw SQL), empties the cache inside that commit, before the route answers. A
reader that read the database before such a commit cannot store what it read: it takes
`generation` before reading and `put` refuses a stale generation. Other processes are heard only
through `on_commit_invalidate` (called after such a commit: the token cache publishes it to the
other service processes, raas/service/notify.py) and whoever calls `invalidate()` on their word;
without that an entry is trusted for at most `ttl_s` after it was stored, then read again.

Statements run on the session's DBAPI connection directly (the SQLite booking path,
raas/service/crud/booking_sqlite.py) are not seen by these hooks: they
name the tables they wrote with `note_write(session, *tables)`, which marks exactly the caches
watching one of them; writes committed on a pool connection outside any session (the
PostgreSQL booking route, raas/service/crud/booking_postgresql.py) are told with
`committed(*tables)` after their commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

#: How long an entry is trusted without reading the database again (changes by other processes).
TTL_S = 1.0
#: session.info key: the caches watching the session's factory.
_CACHES = "raas_commit_caches"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CommitCache(Generic[K, V]):
    def __init__(
        self, watched: tuple[type, ...], ttl_s: float = TTL_S, max_entries: int = 4096
    ) -> None:
        self.watched = watched
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._mark = f"raas_touched_{id(self)}"
        self._tables = {getattr(model, "__table__", None) for model in watched}
        #: Called (in the committing thread) after a commit emptied the cache.
        self.on_commit_invalidate: list[Callable[[], None]] = []

    @property
    def generation(self) -> int:
        """Take this before reading from the database; hand it to `put`."""
        return self._generation

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored_at = entry
        if time.monotonic() - stored_at > self.ttl_s:
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep what was read, unless a change was committed since `generation` was taken."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (value, time.monotonic())

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def committed(self, *tables: Any) -> None:
        """Writes to `tables` were committed outside the watched sessions (a raw connection
        from the pool, the PostgreSQL booking route): empty the cache if it watches one of
        them, as the commit of a watched session would have (before the answer leaves)."""
        if self._tables.intersection(tables):
            self.invalidate()
            for call in self.on_commit_invalidate:
                call()

    def __len__(self) -> int:
        return len(self._entries)

    def watch(self, factory: sessionmaker[Session]) -> None:
        """Invalidate on every commit of `factory`'s sessions that changed a watched row."""
        mark, watched = self._mark, self.watched
        # Each session's info names the caches watching it (for `note_write`); sessionmaker
        # copies its `info` into every session it makes.
        info = factory.kw.setdefault("info", {})
        info[_CACHES] = (*info.get(_CACHES, ()), self)

        def after_flush(session: Session, _context: Any) -> None:
            for obj in (*session.new, *session.dirty, *session.deleted):
                if isinstance(obj, watched):
                    session.info[mark] = True
                    return

        tables = self._tables

        def on_execute(state: ORMExecuteState) -> None:
            # A Core INSERT/UPDATE/DELETE names its table: one into a table that is not
            # watched (a booking's reservation or audit row, for the token cache) leaves the
            # cache alone. Anything else that is not a SELECT (raw SQL) empties it.
            if state.is_select:
                return
            table = getattr(state.statement, "table", None)
            if table is None or table in tables:
                state.session.info[mark] = True

        def after_commit(session: Session) -> None:
            if session.info.pop(mark, False):
                self.invalidate()
                for call in self.on_commit_invalidate:
                    call()

        event.listen(factory, "after_flush", after_flush)
        event.listen(factory, "do_orm_execute", on_execute)
        event.listen(factory, "after_commit", after_commit)


def note_write(session: Session, *tables: Any) -> None:
    """Say that `tables` were written in `session`'s transaction by statements its hooks did not
    see (run on the DBAPI connection directly): each cache watching one of them is emptied when
    that transaction commits, as for a write made through the session."""
    for cache in session.info.get(_CACHES, ()):
        if cache._tables.intersection(tables):
            session.info[cache._mark] = True
