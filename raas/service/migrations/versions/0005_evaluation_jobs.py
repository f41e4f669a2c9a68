"""Evaluation jobs (docs/fleet.md, "Evaluation jobs"): the job queue, each claim (attempt) with
its hold on the robot's calendar, per-episode results and the job's log. A job's control lease
belongs to an attempt instead of a reservation, so leases and revocations may name either.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=50), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=True),
        sa.Column("hand_model", sa.String(length=100), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("deadline", TIME, nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("episode_timeout_s", sa.Double(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint("episodes >= 1", name=op.f("ck_jobs_episodes")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users")),
        sa.ForeignKeyConstraint(["robot_id"], ["robots.id"], name=op.f("fk_jobs_robot_id_robots")),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["robots.id"], name=op.f("fk_jobs_claimed_by_robots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "ix_jobs_status_priority", ["status", "priority", "created_at"], unique=False
        )

    op.create_table(
        "job_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("claimed_at", TIME, nullable=False),
        sa.Column("hold_until", TIME, nullable=False),
        sa.Column("last_heartbeat_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("lease_jti", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted', 'cancelled')",
            name=op.f("ck_job_attempts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_attempts_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_job_attempts_robot_id_robots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_attempts")),
    )
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_job_attempts_job_number", ["job_id", "number"], unique=True)
        batch_op.create_index(
            "ix_job_attempts_robot_time", ["robot_id", "claimed_at", "hold_until"], unique=False
        )

    op.create_table(
        "job_episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("end_reason", sa.String(length=100), nullable=False),
        sa.Column("cycles", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("safety_stop", sa.Boolean(), nullable=False),
        sa.Column("safety_reason", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("recording_sha256", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_episodes_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_job_episodes_robot_id_robots")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_episodes")),
    )
    with op.batch_alter_table("job_episodes", schema=None) as batch_op:
        batch_op.create_index("ix_job_episodes_job_index", ["job_id", "index"], unique=True)

    op.create_table(
        "job_events",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_job_events")),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index("ix_job_events_job_seq", ["job_id", "seq"], unique=False)

    # A job's lease belongs to an attempt, not a reservation (SQLite: the tables are copied;
    # no trigger lives on either).
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.alter_column("reservation_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("job_attempt_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_leases_job_attempt_id_job_attempts"),
            "job_attempts",
            ["job_attempt_id"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_leases_job_attempt_id"), ["job_attempt_id"], unique=False
        )
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.alter_column("reservation_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_revocations_job_id_jobs"), "jobs", ["job_id"], ["id"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM revocations WHERE reservation_id IS NULL")
    op.execute("DELETE FROM leases WHERE reservation_id IS NULL")
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_revocations_job_id_jobs"), type_="foreignkey")
        batch_op.drop_column("job_id")
        batch_op.alter_column("reservation_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_job_attempt_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_leases_job_attempt_id_job_attempts"), type_="foreignkey"
        )
        batch_op.drop_column("job_attempt_id")
        batch_op.alter_column("reservation_id", existing_type=sa.Integer(), nullable=False)
    for table, indexes in (
        ("job_events", ["ix_job_events_job_seq"]),
        ("job_episodes", ["ix_job_episodes_job_index"]),
        ("job_attempts", ["ix_job_attempts_robot_time", "ix_job_attempts_job_number"]),
        ("jobs", ["ix_jobs_status_priority", "ix_jobs_user_id"]),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in indexes:
                batch_op.drop_index(name)
        op.drop_table(table)
