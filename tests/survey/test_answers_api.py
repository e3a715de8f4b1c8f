"""`GET /api/v1/survey/answers`: the answers and their comments, paged and filtered."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.browser.harness import console, screenshot_dirs, served  # noqa: F401
from tests.conftest import Api, FrozenClock
from tests.dashboard.conftest import sign_in
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import COFFEE, answer, comment, fold, send_order, token_for

RULES = """
rules:
  - id: furniture-survey
    kind: transactional
    when: {event: order.created, items: {category: [kids]}}
    send: {after: 0m}
    template: delivery-follow-up
  - id: coffee-survey
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 0m}
    template: delivery-follow-up
    survey: {kind: csat}
"""


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
    """NPS 2 with a comment, NPS 10, CSAT 4 with a comment, and a scanner's answer."""
    first = await send_order(client, dispatcher, smtp_sink, customer_id="c-1")
    second = await send_order(client, dispatcher, smtp_sink, customer_id="c-2")
    coffee = await send_order(client, dispatcher, smtp_sink, items=COFFEE, customer_id="c-3")
    clock.advance(hours=1)
    await answer(client, first.urls[2])
    assert (await comment(client, first.urls[2], "The box arrived crushed.")).status_code == 200
    clock.advance(minutes=1)
    await answer(client, second.urls[10])
    clock.advance(minutes=1)
    csat = f"/s/{token_for(runtime, coffee, 'csat')}/4"
    await answer(client, csat)
    assert (await comment(client, csat, "Good beans, slow delivery.")).status_code == 200
    clock.advance(minutes=1)
    await answer(client, second.urls[0], agent="python-requests/2.32")  # a machine


async def page(client: AsyncClient, api: Api, **params: Any) -> Any:
    response = await client.get("/api/v1/survey/answers", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_answers_with_their_comments_newest_first(
    answered: None, client: AsyncClient, api: Api
) -> None:
    found = await page(client, api)
    assert [(a["rule"], a["kind"], a["score"], a["side"]) for a in found["items"]] == [
        ("coffee-survey", "csat", 4, "positive"),
        ("furniture-survey", "nps", 10, "positive"),
        ("furniture-survey", "nps", 2, "negative"),
    ]
    assert [a["comment"] for a in found["items"]] == [
        "Good beans, slow delivery.",
        None,
        "The box arrived crushed.",
    ]
    first = found["items"][0]
    assert first["class"] == "human" and first["commented_at"] is not None
    assert found["next_cursor"] is None
    machines = await page(client, api, counted="false")
    assert machines["items"][0]["class"] == "machine"
    assert len(machines["items"]) == 4


async def test_filters_by_score_kind_rule_and_comment(
    answered: None, client: AsyncClient, api: Api
) -> None:
    async def scores(**params: Any) -> list[int]:
        return [a["score"] for a in (await page(client, api, **params))["items"]]

    assert await scores(max_score=6) == [4, 2]
    assert await scores(kind="nps", max_score=6) == [2]
    assert await scores(min_score=9) == [10]
    assert await scores(rule="coffee-survey") == [4]
    assert await scores(commented="true") == [4, 2]
    assert await scores(commented="false") == [10]


async def test_pages_follow_the_cursor(answered: None, client: AsyncClient, api: Api) -> None:
    one = await page(client, api, limit=2)
    assert len(one["items"]) == 2 and one["next_cursor"] == one["items"][-1]["id"]
    two = await page(client, api, limit=2, cursor=one["next_cursor"])
    assert [a["score"] for a in two["items"]] == [2]
    assert two["next_cursor"] is None


async def test_it_needs_an_api_key_and_a_sane_range(client: AsyncClient, api: Api) -> None:
    assert (await client.get("/api/v1/survey/answers")).status_code == 401
    bad = await client.get(
        "/api/v1/survey/answers", params={"min_score": 8, "max_score": 3}, headers=api.headers
    )
    assert bad.status_code == 422
    off = await client.get("/api/v1/survey/answers", params={"kind": "x"}, headers=api.headers)
    assert off.status_code == 422


async def test_the_dashboard_shows_the_latest_comments(
    answered: None, client: AsyncClient, runtime: Runtime
) -> None:
    await fold(runtime)  # the page shows figures once the rollup has run
    await sign_in(client)
    html = (await client.get("/dashboard")).text
    comments = html.split('<ul class="comments">')[1].split("</ul>")[0]
    assert comments.index("Good beans, slow delivery.") < comments.index("The box arrived")
    assert "<strong>CSAT 4</strong> · coffee-survey" in comments
    assert "<strong>NPS 2</strong> · furniture-survey" in comments


async def test_the_console_page_shows_the_same_answers(
    answered: None, client: AsyncClient, api: Api
) -> None:
    """`/dashboard/answers`: what the API lists, with comments, by the same filters."""
    await sign_in(client)
    listed = (await client.get("/dashboard/answers")).text
    api_ids = [str(a["id"]) for a in (await page(client, api))["items"]]
    assert re.findall(r'<tr data-answer="(\d+)">', listed) == api_ids
    assert "The box arrived crushed." in listed and "Good beans, slow delivery." in listed

    for params, api_params in (
        ({"max_score": "6"}, {"max_score": 6}),
        ({"kind": "csat"}, {"kind": "csat"}),
        ({"commented": "yes"}, {"commented": True}),
        (
            {"rule": "furniture-survey", "min_score": "9"},
            {"rule": "furniture-survey", "min_score": 9},
        ),
    ):
        shown = (await client.get("/dashboard/answers", params=params)).text
        expected = [str(a["id"]) for a in (await page(client, api, **api_params))["items"]]
        assert re.findall(r'<tr data-answer="(\d+)">', shown) == expected, params
        assert expected  # each filter finds something: the comparison means something
    for bad in ({"min_score": "11"}, {"min_score": "x"}, {"min_score": "8", "max_score": "3"}):
        response = await client.get("/dashboard/answers", params=bad)
        assert response.status_code == 422 and 'role="alert"' in response.text, bad


@pytest.mark.slow
async def test_the_console_page_in_chromium(
    answered: None,
    served: str,  # noqa: F811
    screenshot_dirs: list[Path],  # noqa: F811
) -> None:
    async with console(served, screenshot_dirs) as browser:
        await browser.open("/dashboard/answers")
        assert await browser.page.locator("#answers tbody tr").count() == 3
        await browser.check_page("answers-with-comments")
        await browser.page.check("input[name=commented]")
        async with browser.page.expect_navigation():
            await browser.page.click("form.filters button")
        assert await browser.page.locator("#answers tbody tr").count() == 2
