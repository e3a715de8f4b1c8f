"""The all-rules timeseries the charts draw: the per-rule series added up, from rollups."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from httpx import AsyncClient

from app.dashboard.service import dashboard
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats import service as stats
from app.stats.service import Span
from tests.conftest import FrozenClock, Visitor
from tests.dashboard.conftest import seed
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink
from tests.stats.conftest import fold
from tests.stats.test_stats_flow import send_order
from tests.tracking.conftest import RULES

NOVEMBER = Span(date(2026, 11, 1), date(2026, 11, 30))
FIELDS = ("planned", "sent", "opened", "opened_machine", "clicked", "converted", "conversions")


async def test_all_rules_series_add_up_to_the_overview_and_the_rules(
    client: AsyncClient,
    visitor: Visitor,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    # Two rules: `links`, and `links-too` sending the same template.
    use_rules(
        runtime,
        tmp_path,
        RULES % "" + (RULES % "").replace("rules:\n", "", 1).replace("id: links", "id: links-too"),
    )
    await seed(client, visitor, dispatcher, smtp_sink, clock, runtime)
    await send_order(
        client,
        dispatcher,
        smtp_sink,
        order_id="5100",
        customer_id="c-5",
        email="e@x.org",
        at="2026-11-20T10:31:00Z",
    )
    await fold(runtime)
    async with runtime.session_factory() as session:
        overview = await stats.overview(session, span=NOVEMBER)
        by_rule = await stats.by_rule(session, span=NOVEMBER)
        every = await stats.all_rules_timeseries(session, bucket="day", span=NOVEMBER)
        per_rule = [
            await stats.timeseries(
                session,
                rule_id=rule,
                variant=None,
                bucket="day",
                span=NOVEMBER,
                rule_is_loaded=True,
            )
            for rule in ("links", "links-too")
        ]
    assert {row.rule for row in by_rule.rows} == {"links", "links-too"}
    assert len(every) == 30 and [row.start.day for row in every] == list(range(1, 31))
    for name in FIELDS:
        assert sum(getattr(row, name) for row in every) == getattr(overview, name), name
    # Two orders' mail from each rule, and a third customer's; Anna's one click converts.
    assert (overview.sent, overview.converted) == (6, 1)
    for index, row in enumerate(every):
        assert all(
            getattr(row, name)
            == sum(getattr(series.rows[index], name) for series in per_rule if series)
            for name in FIELDS
        ), row.start
    assert every[19].revenue == {"EUR": "49.80"}  # counted on the day of the mail
    # Anna's second order planned a mail from each rule, due (not sent) on Nov 21.
    assert (every[20].planned, every[20].scheduled, every[20].sent) == (2, 2, 0)


async def test_an_unknown_rule_is_none_and_no_data_is_empty(runtime: Runtime) -> None:
    async with runtime.session_factory() as session:
        assert (
            await dashboard(
                session, span=NOVEMBER, bucket="day", rule="nope", loaded_rules=["thank-you"]
            )
        ) is None
        found = await dashboard(
            session, span=NOVEMBER, bucket="week", rule=None, loaded_rules=["thank-you"]
        )
    assert found is not None and found.empty
    assert found.rules == ["thank-you"]
    assert [chart.name for chart in found.charts] == ["activity", "machines"]  # no revenue
    assert [row.start for row in found.series][:2] == [date(2026, 11, 1), date(2026, 11, 2)]
