"""The robot directory: each daemon registers its control and stream endpoints, CurveZMQ server
public key, hand model, devices and capabilities in its heartbeats (docs/fleet.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TEXT_COLUMNS = (
    ("control_endpoint", 500),
    ("stream_endpoint", 500),
    ("server_public_key", 100),
    ("hand_model", 100),
)


def upgrade() -> None:
    # add_column only: SQLite alters in place, so the overlap triggers stay.
    with op.batch_alter_table("robots", schema=None) as batch_op:
        for name, length in TEXT_COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=length), server_default="", nullable=False)
            )
        batch_op.add_column(sa.Column("devices", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(
            sa.Column("capabilities", sa.Text(), server_default="[]", nullable=False)
        )
        batch_op.add_column(sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("robots", schema=None) as batch_op:
        batch_op.drop_column("registered_at")
        batch_op.drop_column("capabilities")
        batch_op.drop_column("devices")
        for name, _ in reversed(TEXT_COLUMNS):
            batch_op.drop_column(name)
