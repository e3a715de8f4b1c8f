"""What the dashboard shows, read through the stats API's own services (rollups only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.dashboard.charts import Chart, line_chart
from app.reviews.schemas import ReviewStats
from app.reviews.service import review_stats
from app.rules.loader import RuleSet
from app.stats import service as stats
from app.stats.schemas import Bucket, BucketRow, Overview, RulesStats, StepRow
from app.stats.service import Span
from app.survey.repository import AnswerFilter
from app.survey.schemas import AnswerPage, NpsStats
from app.survey.service import answers_page, nps_report

# The latest comments the page shows; the rest through GET /api/v1/survey/answers.
COMMENTS_SHOWN = 10


@dataclass(frozen=True)
class Dashboard:
    span: Span
    bucket: Bucket
    rule: str | None  # the charts' rule; None: all rules together
    rules: list[str]  # to choose from: loaded, or in the stats of the span
    overview: Overview
    table: RulesStats
    # A sequence's rows per step, under its (rule, variant) row; rules without steps have none.
    steps: dict[tuple[str, str | None], list[StepRow]]
    series: list[BucketRow]
    charts: list[Chart]
    # NPS, loyalty index, CSAT, CES and response rate by rule, category, month and the
    # charts' bucket (day or week).
    surveys: dict[str, NpsStats]
    comments: AnswerPage
    # Product reviews (people's only) by product and by category.
    reviews: dict[str, ReviewStats]

    @property
    def empty(self) -> bool:
        """Nothing planned in the span: no figure to show."""
        return self.overview.planned == 0


async def dashboard(
    session: AsyncSession,
    *,
    span: Span,
    bucket: Bucket,
    rule: str | None,
    loaded_rules: Collection[str],
    rule_set: RuleSet | None = None,
) -> Dashboard | None:
    """The page's figures; None for a `rule` that is neither loaded nor in the stats."""
    if rule is None:
        series = await stats.all_rules_timeseries(session, bucket=bucket, span=span)
    else:
        found = await stats.timeseries(
            session,
            rule_id=rule,
            variant=None,
            bucket=bucket,
            span=span,
            rule_is_loaded=rule in loaded_rules,
        )
        if found is None:
            return None
        series = found.rows
    overview = await stats.overview(session, span=span)
    table = await stats.by_rule(session, span=span)
    steps: defaultdict[tuple[str, str | None], list[StepRow]] = defaultdict(list)
    for step in (await stats.by_step(session, span=span)).rows:
        steps[(step.rule, step.variant)].append(step)
    surveys = {
        by: await nps_report(session, first=span.first, last=span.last, by=by, rules=rule_set)
        for by in ("rule", "category", "month", bucket)
    }
    # By day or week the API answers every bucket: the page lists those with something in.
    over_time = surveys[bucket]
    surveys[bucket] = over_time.model_copy(
        update={
            "rows": [
                row
                for row in over_time.rows
                if row.surveys or row.responses or row.csat_responses or row.ces_responses
            ]
        }
    )
    comments = await answers_page(
        session, where=AnswerFilter(commented=True), cursor=None, limit=COMMENTS_SHOWN
    )
    reviews = {
        by: await review_stats(session, first=span.first, last=span.last, by=by)
        for by in ("product", "category")
    }
    return Dashboard(
        span=span,
        bucket=bucket,
        rule=rule,
        rules=sorted({*loaded_rules, *(row.rule for row in table.rows)}),
        overview=overview,
        table=table,
        steps={key: rows for key, rows in steps.items() if any(r.step > 1 for r in rows)},
        series=series,
        charts=charts(series, bucket=bucket),
        surveys=surveys,
        comments=comments,
        reviews=reviews,
    )


def charts(rows: list[BucketRow], *, bucket: Bucket) -> list[Chart]:
    """People's activity, revenue (a line per currency, if any), and machines' apart."""
    found = [
        line_chart(
            "activity",
            "Sent, opened, clicked and converted (people)",
            rows,
            [
                ("Sent", [row.sent for row in rows]),
                ("Opened", [row.opened for row in rows]),
                ("Clicked", [row.clicked for row in rows]),
                ("Converted", [row.converted for row in rows]),
            ],
            bucket=bucket,
        )
    ]
    currencies = sorted({currency for row in rows for currency in row.revenue})
    if currencies:
        found.append(
            line_chart(
                "revenue",
                "Revenue of converted orders",
                rows,
                [
                    (currency, [float(row.revenue.get(currency, 0)) for row in rows])
                    for currency in currencies
                ],
                bucket=bucket,
                money=True,
            )
        )
    found.append(
        line_chart(
            "machines",
            "Opened and clicked by machines (proxies, scanners, prefetch)",
            rows,
            [
                ("Opened by machines", [row.opened_machine for row in rows]),
                ("Clicked by machines", [row.clicked_machine for row in rows]),
            ],
            bucket=bucket,
        )
    )
    return found
