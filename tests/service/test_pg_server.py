"""The throwaway PostgreSQL fixture is a real server: SQLAlchemy connects and round-trips."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.service.pg_server import PgServer


@pytest.mark.system
def test_postgres_url_is_a_real_server(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(sa.text("SELECT version()")).scalar_one()
            conn.execute(sa.text("CREATE TABLE probe (at timestamptz)"))
            conn.execute(sa.text("INSERT INTO probe VALUES ('2026-03-29 01:30:00+00')"))
            at = conn.execute(sa.text("SELECT at FROM probe")).scalar_one()
            conn.execute(sa.text("DROP TABLE probe"))
    finally:
        engine.dispose()
    assert "PostgreSQL" in version
    assert at.utcoffset() is not None and at.isoformat().startswith("2026-03-29T01:30:00")


@pytest.mark.system
def test_each_test_can_have_its_own_database(pg_server: PgServer) -> None:
    url = pg_server.create_database("raas_isolated_probe")
    assert url.endswith("/raas_isolated_probe")
    assert pg_server.psql("SELECT 1", database="raas_isolated_probe").strip() == "1"
