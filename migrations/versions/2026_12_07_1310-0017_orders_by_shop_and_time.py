"""orders by shop and time: the latest purchases of a shop, for best-seller recommendations

Revision ID: 0017
Revises: 0012
Create Date: 2026-12-07 13:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_shop_placed_at", "orders", ["shop", "placed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_orders_shop_placed_at", table_name="orders")
