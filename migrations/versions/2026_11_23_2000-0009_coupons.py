"""coupons: pools of codes handed to messages, and the discount codes orders used

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 20:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coupon_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column("shop", sa.String(length=255), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "redeemed_order_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_coupon_codes_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_order_id"],
            ["orders.id"],
            name=op.f("fk_coupon_codes_redeemed_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_codes")),
        sa.UniqueConstraint("message_id", name=op.f("uq_coupon_codes_message_id")),
        sa.UniqueConstraint("pool", "code", name=op.f("uq_coupon_codes_pool_code")),
    )
    with op.batch_alter_table("coupon_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupon_codes_free",
            ["pool", "imported_at", "id"],
            unique=False,
            postgresql_where=sa.text("assigned_at IS NULL"),
            sqlite_where=sa.text("assigned_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_coupon_codes_redeemed_order_id"), ["redeemed_order_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_coupon_codes_code_key"), ["code_key"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        # Existing orders used no code we know of.
        batch_op.add_column(
            sa.Column("discount_codes", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("discount_codes")

    with op.batch_alter_table("coupon_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_codes_code_key"))
        batch_op.drop_index(batch_op.f("ix_coupon_codes_redeemed_order_id"))
        batch_op.drop_index("ix_coupon_codes_free")

    op.drop_table("coupon_codes")
