"""Login throttling: failed logins per email (known or not), lockout with a growing wait.

A locked email answers 429 `too_many_logins` with Retry-After before its password is even
checked, so guessing costs the guesser time and the service no argon2 work. Emails of no
account are throttled the same way, so a lockout tells nothing about which accounts exist.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from raas.service.errors import TooManyLogins
from raas.service.models import LoginThrottle
from raas.service.settings import Settings


def _key(email: str) -> str:
    return email.strip().lower()[:254]


def refuse_if_locked(db: Session, email: str, now: datetime) -> None:
    row = db.get(LoginThrottle, _key(email))
    if row is not None and row.locked_until is not None and row.locked_until > now:
        wait = math.ceil((row.locked_until - now).total_seconds())
        raise TooManyLogins(
            f"too many failed logins for this account: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def _ensure_row(db: Session, key: str, now: datetime) -> None:
    """Insert the email's row unless it exists. Two first failures at once (two requests, two
    service processes) must both count: on PostgreSQL a plain insert of the second would fail
    on the first one's key; ON CONFLICT DO NOTHING waits for the first to commit, then the
    SELECT ... FOR UPDATE reads its row. (On the connection, not the session: no ORM statement,
    so the token cache is not emptied by a failed login, raas/service/commit_cache.py.)"""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(LoginThrottle).values(
        email=key, failures=0, last_failure_at=now, locked_until=None
    )
    db.connection().execute(stmt.on_conflict_do_nothing(index_elements=["email"]))


def record_failure(db: Session, email: str, now: datetime, settings: Settings) -> datetime | None:
    """Count a failure; answers the lockout's end when this failure locks the email."""
    key = _key(email)
    _ensure_row(db, key, now)
    row = db.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
    assert row is not None
    window = timedelta(seconds=settings.login_failure_window_s)
    if now - row.last_failure_at > window and (row.locked_until is None or row.locked_until <= now):
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    over = row.failures - settings.login_max_failures
    if over >= 0:
        seconds = min(settings.login_lockout_s * 2**over, settings.login_lockout_max_s)
        row.locked_until = now + timedelta(seconds=seconds)
    db.flush()
    return row.locked_until if over >= 0 else None


def record_success(db: Session, email: str) -> None:
    row = db.get(LoginThrottle, _key(email))
    if row is not None:
        db.delete(row)
        db.flush()
