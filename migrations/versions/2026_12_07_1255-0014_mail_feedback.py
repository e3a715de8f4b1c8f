"""mail feedback: bounces and complaints reported after sending, and their stats counters

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-07 13:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TOTALS = ("bounced_async", "soft_bounced", "complained")


def upgrade() -> None:
    op.create_table(
        "mail_feedback_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("provider_event_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_mail_feedback_events_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_feedback_events")),
        sa.UniqueConstraint(
            "provider",
            "provider_event_id",
            name=op.f("uq_mail_feedback_events_provider_provider_event_id"),
        ),
    )
    with op.batch_alter_table("mail_feedback_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mail_feedback_events_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mail_feedback_events_recipient"), ["recipient"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_smtp_message_id"), ["smtp_message_id"], unique=False
        )
    with op.batch_alter_table("stats_totals", schema=None) as batch_op:
        for name in _TOTALS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
    with op.batch_alter_table("stats_messages", schema=None) as batch_op:
        for name in _TOTALS:
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    with op.batch_alter_table("stats_messages", schema=None) as batch_op:
        for name in reversed(_TOTALS):
            batch_op.drop_column(name)
    with op.batch_alter_table("stats_totals", schema=None) as batch_op:
        for name in reversed(_TOTALS):
            batch_op.drop_column(name)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_smtp_message_id"))
    with op.batch_alter_table("mail_feedback_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_feedback_events_recipient"))
        batch_op.drop_index(batch_op.f("ix_mail_feedback_events_message_id"))
    op.drop_table("mail_feedback_events")
