"""The stats page's filter reaches every figure of a rule, the messages not sent are listed
with their reasons, quick ranges, the figures' true lag, and a revenue chart per currency."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from httpx import AsyncClient

from app.dashboard import figures
from app.dashboard.service import charts
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats.schemas import BucketRow
from app.stats.service import figures as stats_figures
from tests.conftest import Api, FrozenClock
from tests.dashboard.conftest import ReadPage, sign_in
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules
from tests.stats.conftest import fold

RULES = """
rules:
  - id: thanks
    kind: transactional
    when: {event: order.created}
    send: {after: 0m}
    template: thank-you
  - id: second
    kind: transactional
    when: {event: order.created}
    send: {after: 0m}
    template: thank-you
"""
SPAN = {"from": "2026-11-01", "to": "2026-11-30"}


async def _seed(client: AsyncClient, api: Api, runtime: Runtime, dispatcher: Dispatcher) -> None:
    """Anna's two mails sent; Boris's two skipped, his address suppressed."""
    for customer, email in (("c-1", "anna@example.org"), ("c-2", "boris@example.org")):
        body = order_created(customer_id=customer, email=email)
        assert (await post_event(client, body)).status_code == 200
    response = await client.post(
        "/api/v1/suppressions",
        json={"email": "boris@example.org", "reason": "complaint"},
        headers=api.headers,
    )
    assert response.status_code == 201
    await dispatcher.run_once()
    await fold(runtime)


def _read(html: str) -> ReadPage:
    page = ReadPage()
    page.feed(html)
    return page


async def test_the_rule_filter_reaches_every_figure_of_a_rule(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await _seed(client, api, runtime, dispatcher)
    await sign_in(client)

    every = await client.get("/dashboard", params=SPAN)
    everything = _read(every.text)
    assert everything.cards["sent"] == "2" and everything.cards["not_sent"] == "2"
    assert {rule for rule, _ in everything.cells} == {"thanks", "second"}
    assert "Every figure below is of every rule." in every.text
    assert re.search(
        r'<tr data-status="skipped" data-reason="suppressed">.*?data-field="count">2<',
        every.text,
        re.S,
    )

    one = await client.get("/dashboard", params=SPAN | {"rule": "second"})
    chosen = _read(one.text)
    api_overview = await client.get(
        "/api/v1/stats/overview", params=SPAN | {"rule": "second"}, headers=api.headers
    )
    assert api_overview.status_code == 200
    overview = api_overview.json()
    assert (overview["sent"], overview["skipped"], overview["planned"]) == (1, 1, 2)
    assert chosen.cards["sent"] == figures.count(overview["sent"]) == "1"
    assert chosen.cards["not_sent"] == "1"
    assert set(chosen.cells) == {("second", "")}  # the table: this rule's rows only
    assert "Every figure below is of the rule second, except" in one.text
    assert re.search(
        r'<tr data-status="skipped" data-reason="suppressed">.*?data-field="count">1<',
        one.text,
        re.S,
    )
    # The API's overview without a rule is still every rule's.
    whole = await client.get("/api/v1/stats/overview", params=SPAN, headers=api.headers)
    assert whole.json()["sent"] == 2


async def test_quick_ranges_and_the_true_lag(
    client: AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await fold(runtime)  # the rollup job has run: the page says how far figures trail
    await sign_in(client)
    page = (await client.get("/dashboard", params={"bucket": "week", "rule": ""})).text
    today = clock.now().date().isoformat()
    links = re.findall(r'<li><a href="(/dashboard\?from=[^"]+)"[^>]*>Last (\d+) days</a>', page)
    assert [days for _, days in links] == ["7", "30", "90"]
    assert links[0][0] == f"/dashboard?from=2026-11-14&amp;to={today}&amp;bucket=week"
    # The default span is the last 30 days: that link is marked as the current one.
    assert re.search(r'aria-current="true">Last 30 days<', page)
    # Settle 60 s, then up to two runs of the rollup job 60 s apart (docs/stats.md).
    assert "they trail what happens by up to 3 minutes" in page


def test_a_revenue_chart_per_currency() -> None:
    rows = [
        BucketRow.model_validate(
            {"start": f"2026-11-0{day}", "end": f"2026-11-0{day}", **_figures(revenue)}
        )
        for day, revenue in ((1, {"EUR": "49.80", "RUB": "12990.00"}), (2, {"EUR": "20.00"}))
    ]
    drawn = charts(rows, bucket="day")
    assert [chart.name for chart in drawn] == [
        "activity",
        "revenue-EUR",
        "revenue-RUB",
        "machines",
    ]
    assert "RUB" in drawn[2].title and "12,990" in drawn[2].svg


def _figures(revenue: dict[str, str]) -> dict[str, object]:
    return stats_figures({}, {currency: Decimal(amount) for currency, amount in revenue.items()})
