"""product_reviews: per-product star reviews from review requests

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-08 11:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("item_position", sa.Integer(), nullable=False),
        sa.Column("product_ref", sa.String(length=64), nullable=True),
        sa.Column("variant_ref", sa.String(length=64), nullable=True),
        sa.Column("sku", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column(
            "catalog_product_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("class", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("commented_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "stars >= 1 AND stars <= 5", name=op.f("ck_product_reviews_stars_range")
        ),
        sa.ForeignKeyConstraint(
            ["catalog_product_id"],
            ["products.id"],
            name=op.f("fk_product_reviews_catalog_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_product_reviews_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_product_reviews_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_product_reviews_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_reviews")),
        sa.UniqueConstraint(
            "message_id", "item_position", name=op.f("uq_product_reviews_message_id_item_position")
        ),
    )
    with op.batch_alter_table("product_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_product_reviews_answered_at", ["answered_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_product_reviews_catalog_product_id"),
            ["catalog_product_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_product_reviews_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_product_reviews_product", ["product_ref", "variant_ref"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("product_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_product_reviews_product")
        batch_op.drop_index(batch_op.f("ix_product_reviews_customer_id"))
        batch_op.drop_index(batch_op.f("ix_product_reviews_catalog_product_id"))
        batch_op.drop_index("ix_product_reviews_answered_at")

    op.drop_table("product_reviews")
