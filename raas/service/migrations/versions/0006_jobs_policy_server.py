"""Evaluation jobs that name a policy server (docs/fleet.md, "Jobs with a policy server"): a job
runs an uploaded bundle or has the robot dial a researcher's policy server, exactly one of the
two (`bundle_sha256` becomes nullable; a check keeps one of them set).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite: the table is copied (batch mode); PostgreSQL: ALTER TABLE in place.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("bundle_sha256", existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column("policy_endpoint", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("policy_server_key", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("policy_horizon", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("policy_blend", sa.String(length=20), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_jobs_one_policy"), "(bundle_sha256 IS NULL) <> (policy_endpoint IS NULL)"
        )


def downgrade() -> None:
    # Jobs with a policy server have no bundle: they cannot live in the old table (nor what
    # refers to them: their attempts' leases, revocations, results, log).
    served = "SELECT id FROM jobs WHERE bundle_sha256 IS NULL"
    attempts = f"SELECT id FROM job_attempts WHERE job_id IN ({served})"
    op.execute(f"DELETE FROM revocations WHERE job_id IN ({served})")
    op.execute(f"DELETE FROM leases WHERE job_attempt_id IN ({attempts})")
    for table in ("job_events", "job_episodes", "job_attempts"):
        op.execute(f"DELETE FROM {table} WHERE job_id IN ({served})")
    op.execute("DELETE FROM jobs WHERE bundle_sha256 IS NULL")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_jobs_one_policy"), type_="check")
        batch_op.drop_column("policy_blend")
        batch_op.drop_column("policy_horizon")
        batch_op.drop_column("policy_server_key")
        batch_op.drop_column("policy_endpoint")
        batch_op.alter_column("bundle_sha256", existing_type=sa.String(length=64), nullable=False)
