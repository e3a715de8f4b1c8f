"""messages.paused_at: when a message was held because its rule went missing

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 14:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Held messages go back to the queue: the older code would cancel them at send time.
    op.execute("UPDATE messages SET status = 'scheduled' WHERE status = 'paused'")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("paused_at")
