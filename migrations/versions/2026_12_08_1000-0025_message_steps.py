"""messages.step and messages.event_at: the steps of a rule's sequence

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        # Every message planned so far is the first (and only) step of its rule.
        batch.add_column(sa.Column("step", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Follow-ups still waiting would be sent by older code as if they were first messages.
    op.execute(
        "UPDATE messages SET status = 'cancelled', status_reason = 'downgraded' "
        "WHERE step > 1 AND status IN ('scheduled', 'paused')"
    )
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("event_at")
        batch.drop_column("step")
