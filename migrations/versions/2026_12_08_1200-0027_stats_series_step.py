"""stats_series.step: the stats of each step of a rule's sequence

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-08 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("rule_id", "variant", "template", "currency")
_NEW = ("rule_id", "variant", "template", "step", "currency")
# The tables whose rows point at a series (ON DELETE CASCADE).
_CHILDREN = ("stats_totals", "stats_revenue_totals", "stats_messages")


def upgrade() -> None:
    # Every series counted so far is counted as step 1: the steps of a sequence planned
    # before now were folded together (a message of step 2 still waiting moves to its own
    # series when its status changes, as any message moves).
    _swap_unique(
        add_step=True,
        old=_OLD,
        new=_NEW,
        old_name="uq_stats_series_rule_id_variant_template_currency",
    )


def downgrade() -> None:
    # Older code has one series per (rule, variant, template): two series that differ only
    # by step cannot both stay. Refuse rather than drop counts without a word.
    found = op.get_bind().execute(sa.text("SELECT count(*) FROM stats_series WHERE step <> 1"))
    if found.scalar_one():
        raise RuntimeError(
            "stats of sequence steps > 1 exist: delete those series first "
            "(DELETE FROM stats_series WHERE step <> 1) to downgrade"
        )
    _swap_unique(
        add_step=False,
        old=_NEW,
        new=_OLD,
        old_name="uq_stats_series_rule_id_variant_template_step_currency",
    )


def _swap_unique(*, add_step: bool, old: Sequence[str], new: Sequence[str], old_name: str) -> None:
    new_name = "uq_stats_series_" + "_".join(new)
    if op.get_bind().dialect.name != "sqlite":
        if add_step:
            op.add_column(
                "stats_series", sa.Column("step", sa.Integer(), nullable=False, server_default="1")
            )
        op.drop_constraint(op.f(old_name), "stats_series", type_="unique")
        op.create_unique_constraint(op.f(new_name), "stats_series", list(new))
        if not add_step:
            op.drop_column("stats_series", "step")
        return
    # SQLite changes a constraint by copying the table, and dropping the old stats_series
    # cascades (foreign keys on) to every running total and tally: keep them aside meanwhile.
    # The table names are the constants above, never input.
    for table in _CHILDREN:
        op.execute(f"CREATE TEMP TABLE keep_{table} AS SELECT * FROM {table}")  # noqa: S608
    with op.batch_alter_table("stats_series", recreate="always") as batch:
        if add_step:
            batch.add_column(sa.Column("step", sa.Integer(), nullable=False, server_default="1"))
        batch.drop_constraint(op.f(old_name), type_="unique")
        batch.create_unique_constraint(op.f(new_name), list(new))
        if not add_step:
            batch.drop_column("step")
    for table in _CHILDREN:
        op.execute(f"DELETE FROM {table}")  # noqa: S608
        op.execute(f"INSERT INTO {table} SELECT * FROM keep_{table}")  # noqa: S608
        op.execute(f"DROP TABLE keep_{table}")
