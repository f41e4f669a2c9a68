"""Authenticated bearer tokens, remembered per process so a request need not read them again.

A request's token is looked up by its SHA-256 (`security.hash_token`) and, on a hit, neither a
database session nor a thread-pool hop is needed (docs/performance.md, "Where the time goes:
the service"). What may stop a token working, and how the cache follows:

- revocation, a password change (it revokes the user's other login sessions), deactivation,
  a role change: any commit in this process whose flush touched an `ApiToken` or `User` row,
  or ran a bulk UPDATE/DELETE, empties the cache in that commit, before the answer goes out;
  a lookup that read the database before such a commit cannot store what it read (a
  generation number guards the store), so the change holds from the next request on;
- expiry: `expires_at` is compared with the request's time on every hit;
- a change written by another process (a second uvicorn worker, a script): an entry is trusted
  for at most `TTL_S` after it was read, then read again.

Only tokens that authenticated are kept; a refused token is read (and refused) every time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from raas.service.errors import TokenExpired
from raas.service.models import ApiToken, User

#: How long an entry is trusted without reading the database again (changes by other processes).
TTL_S = 1.0
#: Entries kept at most; the cache is emptied when full (tokens in use are few).
MAX_ENTRIES = 4096
_TOUCHED = "raas_auth_rows_touched"


@dataclass(frozen=True)
class _Entry:
    token: ApiToken
    user: User
    read_at: float


class TokenCache:
    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        """Take this before reading a token from the database; hand it to `put`."""
        return self._generation

    def get(self, token_hash: str, now: datetime) -> tuple[ApiToken, User] | None:
        """The cached token and user, None if unknown or stale; raises TokenExpired."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if time.monotonic() - entry.read_at > self.ttl_s:
            self._entries.pop(token_hash, None)
            return None
        expires_at = entry.token.expires_at
        if expires_at is not None and expires_at <= now:
            self._entries.pop(token_hash, None)
            raise TokenExpired()
        return entry.token, entry.user

    def put(self, token_hash: str, token: ApiToken, user: User, generation: int) -> None:
        """Keep what was read, unless a change was committed since `generation` was taken."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[token_hash] = _Entry(token, user, time.monotonic())

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def watch(self, factory: sessionmaker[Session]) -> None:
        """Invalidate on every commit of `factory`'s sessions that changed tokens or users."""

        def after_flush(session: Session, _context: Any) -> None:
            for obj in (*session.new, *session.dirty, *session.deleted):
                if isinstance(obj, ApiToken | User):
                    session.info[_TOUCHED] = True
                    return

        def on_execute(state: ORMExecuteState) -> None:
            if state.is_update or state.is_delete:
                state.session.info[_TOUCHED] = True

        def after_commit(session: Session) -> None:
            if session.info.pop(_TOUCHED, False):
                self.invalidate()

        event.listen(factory, "after_flush", after_flush)
        event.listen(factory, "do_orm_execute", on_execute)
        event.listen(factory, "after_commit", after_commit)
