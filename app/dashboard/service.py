"""What the dashboard shows, read through the stats API's own services (rollups only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.dashboard.charts import Chart, line_chart
from app.outbox.queue import unsent_by_reason
from app.reviews.schemas import ReviewStats
from app.reviews.service import review_stats
from app.rules.loader import RuleSet
from app.stats import service as stats
from app.stats.rollup import settle_time
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
    rule: str | None  # the chosen rule; None: all rules together
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
    # (status, reason, count) of the span's messages that were not sent (the rule's, if any).
    unsent: list[tuple[str, str, int]]

    @property
    def has_revenue(self) -> bool:
        return any(chart.name.startswith("revenue-") for chart in self.charts)

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
    # Every figure of the page that belongs to a rule is the chosen rule's.
    overview = await stats.overview(session, span=span, rule=rule)
    table = await stats.by_rule(session, span=span)
    every_rule = sorted({*loaded_rules, *(row.rule for row in table.rows)})
    if rule is not None:
        table = table.model_copy(update={"rows": [r for r in table.rows if r.rule == rule]})
    steps: defaultdict[tuple[str, str | None], list[StepRow]] = defaultdict(list)
    for step in (await stats.by_step(session, span=span)).rows:
        steps[(step.rule, step.variant)].append(step)
    surveys = {
        by: await nps_report(session, first=span.first, last=span.last, by=by, rules=rule_set)
        for by in ("rule", "category", "month", bucket)
    }
    if rule is not None:
        by_rule = surveys["rule"]
        surveys["rule"] = by_rule.model_copy(
            update={"rows": [row for row in by_rule.rows if row.key == rule]}
        )
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
    since = datetime.combine(span.first, time(), UTC)
    until = datetime.combine(span.last + timedelta(days=1), time(), UTC)
    unsent = await unsent_by_reason(session, since=since, until=until, rule=rule)
    return Dashboard(
        span=span,
        bucket=bucket,
        rule=rule,
        rules=every_rule,
        overview=overview,
        table=table,
        steps={key: rows for key, rows in steps.items() if any(r.step > 1 for r in rows)},
        series=series,
        charts=charts(series, bucket=bucket),
        surveys=surveys,
        comments=comments,
        reviews=reviews,
        unsent=unsent,
    )


def figures_lag(settings: Settings) -> timedelta:
    """How far the figures may trail what happened: an event waits until it has been the
    newest for the settle time, then for the next run of the rollup job, which found it as
    the newest on a run of its own (docs/stats.md)."""
    return settle_time(settings) + 2 * timedelta(seconds=settings.stats_rollup_interval)


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
    # A chart per currency: EUR and RUB on one axis would flatten one of them to nothing.
    for currency in sorted({currency for row in rows for currency in row.revenue}):
        found.append(
            line_chart(
                f"revenue-{currency}",
                f"Revenue of converted orders, {currency}",
                rows,
                [(currency, [float(row.revenue.get(currency, 0)) for row in rows])],
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
