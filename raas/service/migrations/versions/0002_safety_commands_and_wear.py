"""Safety: the operator command feed (REST e-stop), per-actuator wear with staff thresholds,
and the robot's last reported safety state and structured health report.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "robot_commands",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("by", sa.String(length=254), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('estop', 'clear_estop')", name=op.f("ck_robot_commands_kind")),
        sa.ForeignKeyConstraint(
            ["robot_id"], ["robots.id"], name=op.f("fk_robot_commands_robot_id_robots")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_robot_commands_user_id_users")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_robot_commands")),
    )
    with op.batch_alter_table("robot_commands", schema=None) as batch_op:
        batch_op.create_index("ix_robot_commands_robot_seq", ["robot_id", "seq"], unique=False)

    op.create_table(
        "actuator_wear",
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("actuator", sa.String(length=64), nullable=False),
        sa.Column("travel_rad", sa.Double(), nullable=False),
        sa.Column("load_s", sa.Double(), nullable=False),
        sa.Column("peak_effort", sa.Double(), nullable=False),
        sa.Column("hours_run", sa.Double(), nullable=False),
        sa.Column("reported_travel_rad", sa.Double(), nullable=False),
        sa.Column("reported_load_s", sa.Double(), nullable=False),
        sa.Column("reported_peak_effort", sa.Double(), nullable=False),
        sa.Column("reported_hours_run", sa.Double(), nullable=False),
        sa.Column("alerted", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["robot_id"],
            ["robots.id"],
            name=op.f("fk_actuator_wear_robot_id_robots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("robot_id", "actuator", name=op.f("pk_actuator_wear")),
    )
    op.create_table(
        "wear_thresholds",
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("travel_rad", sa.Double(), nullable=True),
        sa.Column("load_s", sa.Double(), nullable=True),
        sa.Column("peak_effort", sa.Double(), nullable=True),
        sa.Column("hours_run", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["robot_id"],
            ["robots.id"],
            name=op.f("fk_wear_thresholds_robot_id_robots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("robot_id", name=op.f("pk_wear_thresholds")),
    )
    with op.batch_alter_table("robots", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("health_report", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("health_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("safety_state", sa.String(length=20), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("safety_reason", sa.String(length=100), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("safety_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("estop_latched", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("robots", schema=None) as batch_op:
        batch_op.drop_column("estop_latched")
        batch_op.drop_column("safety_at")
        batch_op.drop_column("safety_reason")
        batch_op.drop_column("safety_state")
        batch_op.drop_column("health_checked_at")
        batch_op.drop_column("health_report")

    op.drop_table("wear_thresholds")
    op.drop_table("actuator_wear")
    with op.batch_alter_table("robot_commands", schema=None) as batch_op:
        batch_op.drop_index("ix_robot_commands_robot_seq")

    op.drop_table("robot_commands")
