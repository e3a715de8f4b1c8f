"""suppression removals, consent changes, customers.marketing_opt_out_at

Undo of suppressions is recorded (suppression_removals); unsubscribing means marketing only,
recorded per customer (consent_changes) and kept against a shop's later "consents" flag
(customers.marketing_opt_out_at). Existing `unsubscribe` suppressions are left as they are:
they keep stopping all mail, as the page that made them promised.

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-07 13:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "suppression_removals",
        sa.Column("id", _ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_removals")),
    )
    with op.batch_alter_table("suppression_removals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suppression_removals_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_suppression_removals_removed_at"), ["removed_at"], unique=False
        )

    op.create_table(
        "consent_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("customer_id", _ID, nullable=True),
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_consent_changes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_changes")),
    )
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_changes_customer_id"), ["customer_id"], unique=False
        )

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("marketing_opt_out_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("marketing_opt_out_at")
    with op.batch_alter_table("consent_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_changes_customer_id"))
    op.drop_table("consent_changes")
    with op.batch_alter_table("suppression_removals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppression_removals_removed_at"))
        batch_op.drop_index(batch_op.f("ix_suppression_removals_email"))
    op.drop_table("suppression_removals")
