"""order refunds: partial refunds by SKU

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 16:57:48.464470+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        # Existing orders get an empty list; new rows get theirs from the application.
        batch_op.add_column(
            sa.Column("refunds", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("refunds", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("refunds")
