"""The loyalty index, response rate, CSAT and CES in the stats API and its CSV, by rule,
product category and month, with exact numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.dashboard.conftest import sign_in
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import COFFEE, answer, fold, send_order, token_for

RULES = """
rules:
  - id: furniture-survey
    kind: transactional
    when: {event: order.created, items: {category: [kids]}}
    send: {after: 0m}
    template: delivery-follow-up
    survey: {kind: nps}
  - id: coffee-survey
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 0m}
    template: delivery-follow-up
    survey: {kind: csat, silent_weight: 1}
"""
AUTUMN = {"from": "2026-11-01", "to": "2026-12-31"}
FIELDS = ("surveys", "answered", "response_rate", "positive", "neutral", "negative", "silent")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    (settings.rules_dir / "rules.yaml").write_text(RULES)
    return settings


@pytest.fixture
async def answered(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    """November: furniture (NPS) 10, 5 and one silent; coffee (CSAT) 5 and one silent, its
    silent counted whole. December: one coffee survey answered 3."""
    furniture = [
        await send_order(client, dispatcher, smtp_sink, customer_id=f"c-{n}") for n in (1, 2, 3)
    ]
    coffee = [
        await send_order(client, dispatcher, smtp_sink, items=COFFEE, customer_id=f"c-{n}")
        for n in (4, 5)
    ]
    clock.advance(hours=1)
    assert (await answer(client, furniture[0].urls[10])).status_code == 200
    assert (await answer(client, furniture[1].urls[5])).status_code == 200
    assert (await answer(client, f"/s/{token_for(runtime, coffee[0], 'csat')}/5")).is_success
    clock.current = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    december = await send_order(
        client,
        dispatcher,
        smtp_sink,
        items=COFFEE,
        customer_id="c-6",
        created_at="2026-12-03T09:59:00Z",
    )
    clock.advance(hours=3)
    assert (await answer(client, f"/s/{token_for(runtime, december, 'csat')}/3")).is_success


async def rows(client: AsyncClient, api: Api, by: str) -> dict[Any, dict[str, Any]]:
    response = await client.get(
        "/api/v1/stats/nps", params={"by": by, **AUTUMN}, headers=api.headers
    )
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()["rows"]}


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in FIELDS)


async def test_by_rule(answered: None, client: AsyncClient, api: Api) -> None:
    found = await rows(client, api, "rule")
    furniture, coffee = found["furniture-survey"], found["coffee-survey"]
    # 3 reached, 1 positive, 1 negative, 1 silent at 0.5: (1 - 1 - 0.5) / 3 = -16.7
    assert figures(furniture) == (3, 2, 0.6667, 1, 0, 1, 1)
    assert (furniture["eli"], furniture["nps"], furniture["responses"]) == (-16.7, 0.0, 2)
    # 3 reached, 1 positive, 1 neutral, 1 silent at 1: (1 - 0 - 1) / 3 = 0
    assert figures(coffee) == (3, 2, 0.6667, 1, 1, 0, 1)
    assert coffee["eli"] == 0.0
    # CSAT answers are no NPS answers.
    assert (coffee["responses"], coffee["nps"]) == (0, None)
    assert (coffee["csat"], coffee["csat_responses"], coffee["ces"]) == (50.0, 2, None)


async def test_by_month(answered: None, client: AsyncClient, api: Api) -> None:
    found = await rows(client, api, "month")
    november, december = found["2026-11"], found["2026-12"]
    # 5 reached: 2 positive, 1 negative, 2 silent (0.5 + 1): (2 - 1 - 1.5) / 5 = -10
    assert figures(november) == (5, 3, 0.6, 2, 0, 1, 2)
    assert (november["eli"], november["csat"]) == (-10.0, 100.0)
    assert figures(december) == (1, 1, 1.0, 0, 1, 0, 0)
    assert (december["eli"], december["csat"]) == (0.0, 0.0)


async def test_by_category(answered: None, client: AsyncClient, api: Api) -> None:
    found = await rows(client, api, "category")
    # Each message counts once in each distinct category of its order.
    assert figures(found["kids/furniture"]) == figures(found["kids/accessories"])
    assert found["kids/furniture"]["eli"] == -16.7
    assert figures(found["coffee/beans"]) == (3, 2, 0.6667, 1, 1, 0, 1)
    assert found["coffee/beans"]["csat"] == 50.0


async def test_the_csv_has_the_same_figures(answered: None, client: AsyncClient, api: Api) -> None:
    expected = await rows(client, api, "rule")
    response = await client.get(
        "/api/v1/stats/nps", params={"by": "rule", "format": "csv", **AUTUMN}, headers=api.headers
    )
    parsed = {row["key"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert parsed["furniture-survey"]["eli"] == "-16.7"
    assert parsed["coffee-survey"]["response_rate"] == "0.6667"
    assert parsed["coffee-survey"]["ces"] == ""
    assert set(parsed["coffee-survey"]) == set(expected["coffee-survey"])


async def test_the_dashboard_shows_the_survey_figures(
    answered: None, client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    await fold(runtime)  # the page shows figures once the rollup has run
    await sign_in(client)
    page = await client.get("/dashboard", params=AUTUMN)
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html
    rule_table = html.split('<table data-surveys="rule">')[1].split("</table>")[0]
    furniture = rule_table.split('<tr data-key="furniture-survey">')[1].split("</tr>")[0]
    assert '<td data-field="eli">-16.7</td>' in furniture
    assert '<td data-field="response_rate">66.7 %</td>' in furniture
    coffee = rule_table.split('<tr data-key="coffee-survey">')[1].split("</tr>")[0]
    assert '<td data-field="csat">50.0</td>' in coffee and '<td data-field="ces">—</td>' in coffee
    assert '<table data-surveys="category">' in html and '<tr data-key="2026-12">' in html
    assert "No comments yet." in html


async def test_over_time_by_week_and_day_every_bucket_with_json_and_csv_alike(
    answered: None, client: AsyncClient, api: Api
) -> None:
    weeks = await rows(client, api, "week")
    # Sunday 1 November is in ISO week 44, Thursday 31 December in week 53: every week shows.
    assert list(weeks) == [f"2026-W{week}" for week in range(44, 54)]
    # All of November's mail went on Friday 20 November (week 47); December's on the 3rd.
    assert figures(weeks["2026-W47"]) == (5, 3, 0.6, 2, 0, 1, 2)
    assert (weeks["2026-W47"]["eli"], weeks["2026-W47"]["csat"]) == (-10.0, 100.0)
    assert (weeks["2026-W47"]["nps"], weeks["2026-W47"]["responses"]) == (0.0, 2)
    assert figures(weeks["2026-W49"]) == (1, 1, 1.0, 0, 1, 0, 0)
    # A week without mail: nothing counted, no index.
    assert figures(weeks["2026-W48"]) == (0, 0, None, 0, 0, 0, 0)
    assert (weeks["2026-W48"]["eli"], weeks["2026-W48"]["nps"]) == (None, None)

    days = await rows(client, api, "day")
    keys = list(days)
    assert (len(keys), keys[0], keys[-1]) == (61, "2026-11-01", "2026-12-31")
    assert figures(days["2026-11-20"]) == figures(weeks["2026-W47"])
    assert days["2026-12-03"]["csat"] == 0.0
    assert days["2026-11-21"]["eli"] is None

    response = await client.get(
        "/api/v1/stats/nps", params={"by": "week", "format": "csv", **AUTUMN}, headers=api.headers
    )
    assert response.status_code == 200
    parsed = {row["key"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert list(parsed) == list(weeks)
    assert (parsed["2026-W47"]["eli"], parsed["2026-W47"]["surveys"]) == ("-10.0", "5")
    assert parsed["2026-W48"]["eli"] == ""


async def test_over_time_refuses_too_many_buckets(client: AsyncClient, api: Api) -> None:
    span = {"from": "2020-01-01", "to": "2026-12-31"}
    by_day = await client.get(
        "/api/v1/stats/nps", params={"by": "day", **span}, headers=api.headers
    )
    assert by_day.status_code == 422
    assert "more than 1000 buckets" in by_day.text
    by_week = await client.get(
        "/api/v1/stats/nps", params={"by": "week", **span}, headers=api.headers
    )
    assert by_week.status_code == 200
    assert len(by_week.json()["rows"]) == 366  # 2020-W01 to 2026-W53


async def test_the_dashboard_shows_the_survey_figures_per_week(
    answered: None, client: AsyncClient, runtime: Runtime
) -> None:
    await fold(runtime)
    await sign_in(client)
    page = await client.get("/dashboard", params={**AUTUMN, "bucket": "week"})
    assert page.status_code == 200
    weeks = page.text.split('<table data-surveys="week">')[1].split("</table>")[0]
    # Only the weeks with surveys or answers: the 47th (November's mail) and the 49th.
    assert weeks.count("<tr data-key=") == 2
    week47 = weeks.split('<tr data-key="2026-W47">')[1].split("</tr>")[0]
    assert '<td data-field="eli">-10.0</td>' in week47
    assert '<tr data-key="2026-W49">' in weeks
