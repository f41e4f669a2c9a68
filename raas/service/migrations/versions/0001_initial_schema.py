"""Initial schema, with the database-enforced rule that one robot is never double-booked.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:39:29.557695
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "robots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("endpoint", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lease_public_key", sa.Text(), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health_blocked", sa.Boolean(), nullable=False),
        sa.Column("health_note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('available', 'maintenance', 'offline')", name=op.f("ck_robots_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_robots")),
        sa.UniqueConstraint("name", name=op.f("uq_robots_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('researcher', 'staff', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["robot_id"],
            ["robots.id"],
            name=op.f("fk_api_tokens_robot_id_robots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_audit_log_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "maintenance_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at > starts_at", name=op.f("ck_maintenance_blocks_positive_duration")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_maintenance_blocks_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_maintenance_blocks_robot_id_robots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_blocks")),
    )
    with op.batch_alter_table("maintenance_blocks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maintenance_blocks_robot_id"), ["robot_id"], unique=False
        )

    op.create_table(
        "quotas",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("hours_per_week", sa.Double(), nullable=True),
        sa.Column("max_days_ahead", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_quotas_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_quotas")),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('confirmed', 'cancelled')", name=op.f("ck_reservations_status")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_reservations_positive_duration")),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_reservations_robot_id_robots")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_reservations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reservations_robot_time", ["robot_id", "starts_at", "ends_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_reservations_user_id"), ["user_id"], unique=False)

    op.create_table(
        "leases",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["reservations.id"],
            name=op.f("fk_leases_reservation_id_reservations"),
        ),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_leases_robot_id_robots")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_leases_user_id_users")),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_leases")),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leases_reservation_id"), ["reservation_id"], unique=False
        )

    op.create_table(
        "revocations",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["reservations.id"],
            name=op.f("fk_revocations_reservation_id_reservations"),
        ),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_revocations_robot_id_robots")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_revocations")),
    )
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.create_index("ix_revocations_robot_seq", ["robot_id", "seq"], unique=False)

    _create_no_overlap()


def downgrade() -> None:
    _drop_no_overlap()
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.drop_index("ix_revocations_robot_seq")

    op.drop_table("revocations")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_reservation_id"))

    op.drop_table("leases")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservations_user_id"))
        batch_op.drop_index("ix_reservations_robot_time")

    op.drop_table("reservations")
    op.drop_table("quotas")
    with op.batch_alter_table("maintenance_blocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintenance_blocks_robot_id"))

    op.drop_table("maintenance_blocks")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("robots")


# Two confirmed reservations of one robot never overlap (half-open [start, end) ranges).
# PostgreSQL: an exclusion constraint. SQLite: triggers; the service also takes the write lock
# (BEGIN IMMEDIATE) before it checks, so the check and the insert are one atomic step.
_SQLITE_OVERLAP = """
    NEW.status = 'confirmed' AND EXISTS (
        SELECT 1 FROM reservations AS r
        WHERE r.robot_id = NEW.robot_id AND r.status = 'confirmed' AND r.id IS NOT NEW.id
          AND r.starts_at < NEW.ends_at AND NEW.starts_at < r.ends_at)
"""


def _create_no_overlap() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE reservations ADD CONSTRAINT reservations_no_overlap "
            "EXCLUDE USING gist (robot_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) "
            "WHERE (status = 'confirmed')"
        )
    elif op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER reservations_no_overlap_insert BEFORE INSERT ON reservations "
            f"WHEN {_SQLITE_OVERLAP} BEGIN SELECT RAISE(ABORT, 'reservations_no_overlap'); END"
        )
        op.execute(
            "CREATE TRIGGER reservations_no_overlap_update "
            "BEFORE UPDATE OF robot_id, starts_at, ends_at, status ON reservations "
            f"WHEN {_SQLITE_OVERLAP} BEGIN SELECT RAISE(ABORT, 'reservations_no_overlap'); END"
        )


def _drop_no_overlap() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE reservations DROP CONSTRAINT reservations_no_overlap")
    elif op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER reservations_no_overlap_insert")
        op.execute("DROP TRIGGER reservations_no_overlap_update")
