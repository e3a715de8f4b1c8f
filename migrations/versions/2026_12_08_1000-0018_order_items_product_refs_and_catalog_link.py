"""order items: the platform's product and variant ids, and the catalog product they are

Revision ID: 0018
Revises: 0012
Create Date: 2026-12-08 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LINKS = (
    ("catalog_product_id", "products", "fk_order_items_catalog_product_id_products"),
    (
        "catalog_variant_id",
        "product_variants",
        "fk_order_items_catalog_variant_id_product_variants",
    ),
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, never a batch: on SQLite a batch copies `order_items`,
    # and dropping the old table would cascade (foreign keys on) to nothing of ours today but
    # is the trap noted in 0012. Existing items get nulls: they are matched as products arrive.
    op.add_column("order_items", sa.Column("product_ref", sa.String(length=64), nullable=True))
    op.add_column("order_items", sa.Column("variant_ref", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot ALTER a constraint onto a table, but it can add a column that
        # REFERENCES another table (its default being NULL): the same foreign key, no copy.
        for name, target, _ in _LINKS:
            op.execute(
                f"ALTER TABLE order_items ADD COLUMN {name} INTEGER "
                f"REFERENCES {target} (id) ON DELETE SET NULL"
            )
    else:
        for name, target, constraint in _LINKS:
            op.add_column("order_items", sa.Column(name, sa.BigInteger(), nullable=True))
            op.create_foreign_key(
                op.f(constraint), "order_items", target, [name], ["id"], ondelete="SET NULL"
            )
    op.create_index(
        op.f("ix_order_items_catalog_product_id"),
        "order_items",
        ["catalog_product_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_order_items_catalog_product_id"), table_name="order_items")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite refuses to drop a column a foreign key uses; the columns stay (all nullable,
        # ignored by the older code). Only a batch copy could remove them: see upgrade().
        op.drop_column("order_items", "variant_ref")
        op.drop_column("order_items", "product_ref")
        return
    for name, _, constraint in _LINKS:
        op.drop_constraint(op.f(constraint), "order_items", type_="foreignkey")
        op.drop_column("order_items", name)
    op.drop_column("order_items", "variant_ref")
    op.drop_column("order_items", "product_ref")
