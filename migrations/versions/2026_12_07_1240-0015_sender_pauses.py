"""sender pauses: workers that stopped sending after sender-side SMTP failures

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-07 12:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_pauses",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_sender_pauses")),
    )


def downgrade() -> None:
    op.drop_table("sender_pauses")
