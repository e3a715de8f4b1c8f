"""erasures: digests of erased customers' ids and addresses, so late events store nothing

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-07 13:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index("ix_erasures_shop_subject", "erasures", ["shop", "subject"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_erasures_shop_subject", table_name="erasures")
    op.drop_table("erasures")
