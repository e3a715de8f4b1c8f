"""stats rollups: conversions, running totals of counts and revenue, per-message counts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 17:29:55.092947+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_series",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("template", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_series")),
        sa.UniqueConstraint(
            "rule_id",
            "variant",
            "template",
            "currency",
            name=op.f("uq_stats_series_rule_id_variant_template_currency"),
        ),
    )
    op.create_table(
        "stats_watermarks",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("folded_id", sa.BigInteger(), nullable=False),
        sa.Column("candidate_id", sa.BigInteger(), nullable=True),
        sa.Column("candidate_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_stats_watermarks")),
    )
    op.create_table(
        "stats_messages",
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column(
            "series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bounced", sa.Boolean(), nullable=False),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("opens_machine", sa.Integer(), nullable=False),
        sa.Column("opens_unknown", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("clicks_machine", sa.Integer(), nullable=False),
        sa.Column("clicks_unknown", sa.Integer(), nullable=False),
        sa.Column("unsubscribed", sa.Boolean(), nullable=False),
        sa.Column("conversions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["stats_series.id"],
            name=op.f("fk_stats_messages_series_id_stats_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_stats_messages")),
    )
    with op.batch_alter_table("stats_messages", schema=None) as batch_op:
        batch_op.create_index("ix_stats_messages_status", ["status"], unique=False)

    op.create_table(
        "stats_revenue_totals",
        sa.Column(
            "series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["stats_series.id"],
            name=op.f("fk_stats_revenue_totals_series_id_stats_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("series_id", "day", name=op.f("pk_stats_revenue_totals")),
    )
    op.create_table(
        "stats_totals",
        sa.Column(
            "series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("planned", sa.BigInteger(), nullable=False),
        sa.Column("scheduled", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("bounced", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.Column("held_out", sa.BigInteger(), nullable=False),
        sa.Column("opened", sa.BigInteger(), nullable=False),
        sa.Column("opens", sa.BigInteger(), nullable=False),
        sa.Column("opened_machine", sa.BigInteger(), nullable=False),
        sa.Column("opens_machine", sa.BigInteger(), nullable=False),
        sa.Column("opened_unknown", sa.BigInteger(), nullable=False),
        sa.Column("opens_unknown", sa.BigInteger(), nullable=False),
        sa.Column("clicked", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("clicked_machine", sa.BigInteger(), nullable=False),
        sa.Column("clicks_machine", sa.BigInteger(), nullable=False),
        sa.Column("clicked_unknown", sa.BigInteger(), nullable=False),
        sa.Column("clicks_unknown", sa.BigInteger(), nullable=False),
        sa.Column("unsubscribed", sa.BigInteger(), nullable=False),
        sa.Column("converted", sa.BigInteger(), nullable=False),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.Column("held_out_converted", sa.BigInteger(), nullable=False),
        sa.Column("held_out_conversions", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["stats_series.id"],
            name=op.f("fk_stats_totals_series_id_stats_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("series_id", "day", name=op.f("pk_stats_totals")),
    )
    op.create_table(
        "conversions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("via", sa.String(length=8), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_conversions_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_conversions_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("order_id", name=op.f("uq_conversions_order_id")),
    )
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversions_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversions_message_id"))

    op.drop_table("conversions")
    op.drop_table("stats_totals")
    op.drop_table("stats_revenue_totals")
    with op.batch_alter_table("stats_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_messages_status")

    op.drop_table("stats_messages")
    op.drop_table("stats_watermarks")
    op.drop_table("stats_series")
