"""Fixtures shared by the service tests.

`postgres_url`: a real throwaway PostgreSQL server for the whole session
(tests/service/pg_server.py); where PostgreSQL is missing the test skips locally and
fails under RAAS_REQUIRE_ALL=1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.service.pg_server import PgServer, start_pg_server, unavailable_reason


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server per test session (initdb + pg_ctl in a temp dir)."""
    why = unavailable_reason()
    require("PostgreSQL", why is None, why or "")
    server = start_pg_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(pg_server: PgServer) -> str:
    """SQLAlchemy URL (postgresql+psycopg) of an empty database on the throwaway server."""
    return pg_server.url()


# -- reservation service fixtures (service core) ----------------------------------------------

_DB_COUNTER = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh database on the throwaway PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'raas.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database(f"raas_{os.getpid()}_{next(_DB_COUNTER)}")
