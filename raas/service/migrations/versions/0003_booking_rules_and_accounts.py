"""The robot's dashboard address; booking rules per robot (granularity, shortest and longest
booking, staff longest, buffer); the signing key id of leases; idempotency keys, revisions and
series of reservations; the login throttle.

Rows stored by older versions are left as they are (a sub-second booking included): the
calendar feeds and the availability endpoint render any row a database can hold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROBOT_RULES = (
    "booking_granularity_s",
    "min_booking_s",
    "max_booking_s",
    "staff_max_booking_s",
    "buffer_s",
)


def upgrade() -> None:
    # add_column and create_index only: SQLite alters in place, so the overlap triggers stay.
    with op.batch_alter_table("robots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dashboard_url", sa.String(length=500), server_default="", nullable=False)
        )
        for name in ROBOT_RULES:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("series_id", sa.String(length=32), nullable=True))
        batch_op.create_index(
            "ix_reservations_idempotency", ["user_id", "idempotency_key"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_reservations_series_id"), ["series_id"], unique=False)
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kid", sa.String(length=64), nullable=True))
    op.create_table(
        "login_throttle",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_login_throttle")),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_column("kid")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservations_series_id"))
        batch_op.drop_index("ix_reservations_idempotency")
    # Dropping columns makes SQLite rebuild the table, which drops its triggers: drop them
    # first and lay them again after, as the initial migration does.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS reservations_no_overlap_insert")
        op.execute("DROP TRIGGER IF EXISTS reservations_no_overlap_update")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_column("series_id")
        batch_op.drop_column("revision")
        batch_op.drop_column("idempotency_key")
    if bind.dialect.name == "sqlite":
        initial = importlib.import_module("raas.service.migrations.versions.0001_initial_schema")
        initial._create_no_overlap()
    with op.batch_alter_table("robots", schema=None) as batch_op:
        for name in reversed(ROBOT_RULES):
            batch_op.drop_column(name)
        batch_op.drop_column("dashboard_url")
