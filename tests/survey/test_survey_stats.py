"""NPS in the stats API: rule rows, overview, templates, timeseries, and /api/v1/stats/nps
by rule, product category and month, in JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update

from app.models import OrderItem
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import COFFEE, FURNITURE, NO_DECLARED_SURVEY, answer, fold, send_order

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
AUTUMN = {"from": "2026-11-01", "to": "2026-12-31"}


@pytest.fixture
async def answered(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    """November: furniture 10 and 8, coffee 5 (after a 9 it took back); December: coffee 9."""
    furniture = await send_order(client, dispatcher, smtp_sink, customer_id="c-1")
    coffee = await send_order(client, dispatcher, smtp_sink, items=COFFEE, customer_id="c-2")
    more = await send_order(client, dispatcher, smtp_sink, items=FURNITURE, customer_id="c-3")
    clock.advance(hours=1)
    for url in (furniture.urls[10], coffee.urls[9], more.urls[8]):
        assert (await answer(client, url)).status_code == 200
    clock.advance(minutes=5)
    await answer(client, coffee.urls[5])
    clock.current = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    december = await send_order(
        client,
        dispatcher,
        smtp_sink,
        items=COFFEE,
        customer_id="c-4",
        created_at="2026-12-03T09:59:00Z",
    )
    clock.advance(hours=3)
    await answer(client, december.urls[9])
    await fold(runtime)


async def get(client: AsyncClient, api: Api, url: str, **params: str) -> Any:
    response = await client.get(url, params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    return response.json()


def row(
    key: str | None, promoters: int, passives: int, detractors: int, nps: float | None
) -> dict[str, Any]:
    return {
        "key": key,
        "responses": promoters + passives + detractors,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "nps": nps,
        **NO_DECLARED_SURVEY,
    }


async def test_rule_rows_overview_templates_and_timeseries_have_nps(
    answered: None, client: AsyncClient, api: Api
) -> None:
    rules = await get(client, api, "/api/v1/stats/rules", **NOVEMBER)
    assert {(r["rule"], r["sent"], r["nps"]) for r in rules["rows"]} == {
        ("furniture-survey", 2, 50.0),  # 10 and 8
        ("coffee-survey", 1, -100.0),  # the 5 that replaced the 9
    }
    december = await get(
        client, api, "/api/v1/stats/rules", **{"from": "2026-12-01", "to": "2026-12-31"}
    )
    assert [(r["rule"], r["nps"]) for r in december["rows"]] == [("coffee-survey", 100.0)]
    overview = await get(client, api, "/api/v1/stats/overview", **NOVEMBER)
    assert overview["nps"] == 0.0  # one promoter, one passive, one detractor
    templates = await get(client, api, "/api/v1/stats/templates", **AUTUMN)
    assert [(r["template"], r["nps"]) for r in templates["rows"]] == [("delivery-follow-up", 25.0)]
    weeks = await get(
        client, api, "/api/v1/stats/rules/coffee-survey/timeseries", bucket="week", **AUTUMN
    )
    by_week = {r["start"]: r["nps"] for r in weeks["rows"] if r["nps"] is not None}
    assert by_week == {"2026-11-16": -100.0, "2026-11-30": 100.0}
    # No answers in a span: null, not 0.
    empty = await get(
        client, api, "/api/v1/stats/overview", **{"from": "2026-10-01", "to": "2026-10-31"}
    )
    assert empty["nps"] is None


async def test_nps_by_rule_category_and_month(
    answered: None, client: AsyncClient, api: Api
) -> None:
    by_rule = await get(client, api, "/api/v1/stats/nps", by="rule", **AUTUMN)
    assert by_rule == {
        "from": "2026-11-01",
        "to": "2026-12-31",
        "by": "rule",
        "rows": [row("coffee-survey", 1, 0, 1, 0.0), row("furniture-survey", 1, 1, 0, 50.0)],
    }
    by_category = await get(client, api, "/api/v1/stats/nps", by="category", **AUTUMN)
    # An answer counts once for each distinct category of its order.
    assert by_category["rows"] == [
        row("coffee/beans", 1, 0, 1, 0.0),
        row("kids/accessories", 1, 1, 0, 50.0),
        row("kids/furniture", 1, 1, 0, 50.0),
        row("kitchen/coffee", 1, 0, 1, 0.0),
    ]
    by_month = await get(client, api, "/api/v1/stats/nps", by="month", **AUTUMN)
    assert by_month["rows"] == [row("2026-11", 1, 1, 1, 0.0), row("2026-12", 1, 0, 0, 100.0)]
    november = await get(client, api, "/api/v1/stats/nps", by="month", **NOVEMBER)
    assert [r["key"] for r in november["rows"]] == ["2026-11"]


@pytest.mark.parametrize("by", ["rule", "category", "month"])
async def test_csv_matches_json(answered: None, client: AsyncClient, api: Api, by: str) -> None:
    rows = (await get(client, api, "/api/v1/stats/nps", by=by, **AUTUMN))["rows"]
    response = await client.get(
        "/api/v1/stats/nps", params={"by": by, "format": "csv", **AUTUMN}, headers=api.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    parsed = list(csv.DictReader(io.StringIO(response.text)))
    assert list(parsed[0]) == [
        "key",
        "responses",
        "promoters",
        "passives",
        "detractors",
        "nps",
        *NO_DECLARED_SURVEY,
    ]
    as_text = [
        {name: "" if value is None else str(value) for name, value in r.items()} for r in rows
    ]
    assert parsed == as_text


async def test_an_order_without_categories_counts_under_null(
    client: AsyncClient,
    api: Api,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    runtime: Runtime,
) -> None:
    items = [{"sku": "KIDS-X", "name": "Kids' thing", "category": "kids", "quantity": 1}]
    mail = await send_order(client, dispatcher, smtp_sink, items=items, customer_id="c-9")
    # The shop stops categorising the item (an update of the order, as intake would store it).
    async with runtime.session_factory() as session, session.begin():
        await session.execute(update(OrderItem).values(category=None))
    clock.advance(hours=1)
    await answer(client, mail.urls[2])
    result = await get(client, api, "/api/v1/stats/nps", by="category", **NOVEMBER)
    assert result["rows"] == [row(None, 0, 0, 1, -100.0)]


async def test_the_nps_endpoint_checks_its_input(client: AsyncClient, api: Api) -> None:
    assert (await client.get("/api/v1/stats/nps")).status_code == 401
    bad_by = await client.get("/api/v1/stats/nps", params={"by": "year"}, headers=api.headers)
    assert bad_by.status_code == 422
    assert bad_by.json()["detail"][0]["loc"] == ["query", "by"]
    backwards = await client.get(
        "/api/v1/stats/nps", params={"from": "2026-12-01", "to": "2026-11-01"}, headers=api.headers
    )
    assert backwards.status_code == 422 and "after" in backwards.json()["detail"]
    empty = await get(client, api, "/api/v1/stats/nps", **NOVEMBER)
    assert empty["rows"] == []
