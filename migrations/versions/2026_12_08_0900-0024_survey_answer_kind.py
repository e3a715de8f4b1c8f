"""survey_answers.kind: NPS, CSAT or CES, the scale of the answer's score

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-08 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every answer so far was to the 0-10 question: NPS.
    with op.batch_alter_table("survey_answers") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="nps"))
        batch.create_check_constraint(
            op.f("ck_survey_answers_score_fits_kind"),
            "kind = 'nps' OR (kind = 'csat' AND score BETWEEN 1 AND 5) "
            "OR (kind = 'ces' AND score BETWEEN 1 AND 7)",
        )


def downgrade() -> None:
    # CSAT and CES answers would read as NPS scores in the older code: they go.
    op.execute("DELETE FROM survey_answers WHERE kind <> 'nps'")
    with op.batch_alter_table("survey_answers") as batch:
        batch.drop_constraint(op.f("ck_survey_answers_score_fits_kind"), type_="check")
        batch.drop_column("kind")
