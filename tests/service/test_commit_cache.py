"""Commit-invalidated caches and Core statements (raas/service/commit_cache.py): a Core
INSERT/UPDATE/DELETE empties a cache only when it writes one of the tables the cache watches
(a booking's Core inserts leave the token cache alone); raw SQL still empties every cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Table, insert, text, update
from sqlalchemy.sql import Executable

from raas.service.db import Database
from raas.service.models import AuditEntry, Role, User
from tests.service.harness import seed, settings_for


def _token_cache_after(database_url: str, tmp_path: Path, statement: Executable) -> int:
    seed(settings_for(database_url, tmp_path), users={"a@lab": Role.researcher})
    db = Database(database_url)
    try:
        cache = db.token_cache
        cache.put("probe", object(), cache.generation)  # type: ignore[arg-type]
        with db.write() as session:
            session.execute(statement)
        return len(cache)
    finally:
        db.dispose()


def _audit_row() -> Executable:
    table: Table = AuditEntry.__table__  # type: ignore[assignment]
    return insert(table).values(at=datetime.now(UTC), action="probe", target="t", detail="")


def test_a_core_insert_into_an_unwatched_table_keeps_the_token_cache(
    database_url: str, tmp_path: Path
) -> None:
    assert _token_cache_after(database_url, tmp_path, _audit_row()) == 1


@pytest.mark.parametrize(
    "statement",
    [
        update(User).values(name="renamed"),
        text("UPDATE audit_log SET detail = 'x'"),  # raw SQL: its tables are not known
    ],
    ids=["core-update-of-users", "raw-sql"],
)
def test_a_write_to_a_watched_table_or_raw_sql_empties_it(
    database_url: str, tmp_path: Path, statement: Executable
) -> None:
    assert _token_cache_after(database_url, tmp_path, statement) == 0
