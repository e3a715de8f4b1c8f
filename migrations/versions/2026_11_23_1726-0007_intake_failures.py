"""intake failures: authentic deliveries that could not be mapped, kept for replay

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 17:26:10.515343+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "webhook_delivery_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replay_result", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_intake_failures_webhook_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_failures")),
        sa.UniqueConstraint(
            "webhook_delivery_id", name=op.f("uq_intake_failures_webhook_delivery_id")
        ),
    )
    with op.batch_alter_table("intake_failures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_intake_failures_replayed_at"), ["replayed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("intake_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_intake_failures_replayed_at"))

    op.drop_table("intake_failures")
