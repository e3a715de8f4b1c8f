"""repurchase gaps: observed rebuy intervals for learned timing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:35:42.430490+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "repurchase_gaps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("log_days", sa.Float(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_repurchase_gaps_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_repurchase_gaps_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repurchase_gaps")),
        sa.UniqueConstraint(
            "rule_id", "order_id", name=op.f("uq_repurchase_gaps_rule_id_order_id")
        ),
    )
    with op.batch_alter_table("repurchase_gaps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_repurchase_gaps_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index("ix_repurchase_gaps_rule_latest", ["rule_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("repurchase_gaps", schema=None) as batch_op:
        batch_op.drop_index("ix_repurchase_gaps_rule_latest")
        batch_op.drop_index(batch_op.f("ix_repurchase_gaps_customer_id"))

    op.drop_table("repurchase_gaps")
