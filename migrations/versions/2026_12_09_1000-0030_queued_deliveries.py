"""webhook_deliveries.queued: deliveries stored by the request and applied by a worker

Revision ID: 0030
Revises: 0027
Create Date: 2026-12-09 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column("queued", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # Partial: the queue is a handful of rows in a table of millions; the worker reads it
    # oldest first.
    op.create_index(
        "ix_webhook_deliveries_queued",
        "webhook_deliveries",
        ["id"],
        postgresql_where=sa.text("queued"),
        sqlite_where=sa.text("queued"),
    )


def downgrade() -> None:
    # Older code cannot apply what is still queued: refuse rather than drop orders.
    found = op.get_bind().execute(sa.text("SELECT count(*) FROM webhook_deliveries WHERE queued"))
    if found.scalar_one():
        raise RuntimeError(
            "webhook deliveries are still queued: let a worker apply them "
            "(or set AFTERSALE_INTAKE_MODE=inline and wait) before downgrading"
        )
    op.drop_index("ix_webhook_deliveries_queued", table_name="webhook_deliveries")
    op.drop_column("webhook_deliveries", "queued")
