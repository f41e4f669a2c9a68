"""Authenticated bearer tokens, remembered per process so a request need not read them again.

A request's token is looked up by its SHA-256 (`security.hash_token`) and, on a hit, neither a
database session nor a thread-pool hop is needed (docs/performance.md, "Where the time goes:
the service"). What may stop a token working, and how the cache follows:

- revocation, a password change (it revokes the user's other login sessions), deactivation,
  a role change: any commit in this process whose flush touched an `ApiToken` or `User` row,
  or ran a statement other than a SELECT, empties the cache in that commit, before the answer
  goes out (raas/service/commit_cache.py);
  a lookup that read the database before such a commit cannot store what it read (a
  generation number guards the store), so the change holds from the next request on;
- expiry: `expires_at` is compared with the request's time on every hit;
- a change written by another process (a second uvicorn worker, a script): an entry is trusted
  for at most `TTL_S` after it was read, then read again.

Only tokens that authenticated are kept; a refused token is read (and refused) every time.
"""

from __future__ import annotations

from datetime import datetime

from raas.service.commit_cache import TTL_S, CommitCache
from raas.service.errors import TokenExpired
from raas.service.models import ApiToken, User

__all__ = ["TTL_S", "TokenCache"]


class TokenCache(CommitCache[str, tuple[ApiToken, User]]):
    """Token hash -> (token, user), emptied by commits touching tokens or users."""

    def __init__(self, ttl_s: float = TTL_S) -> None:
        super().__init__((ApiToken, User), ttl_s)

    def lookup(self, token_hash: str, now: datetime) -> tuple[ApiToken, User] | None:
        """The cached token and user, None if unknown or stale; raises TokenExpired."""
        hit = self.get(token_hash)
        if hit is None:
            return None
        expires_at = hit[0].expires_at
        if expires_at is not None and expires_at <= now:
            self.drop(token_hash)
            raise TokenExpired()
        return hit
