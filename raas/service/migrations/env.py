"""Alembic environment: uses the engine handed over by raas.service.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from raas.service.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")

# Migrations take their own plain connection: DDL must not run inside BEGIN IMMEDIATE games.
with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
