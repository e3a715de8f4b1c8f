"""Review requests per product, through the HTTP API and the real SMTP sink: per-item mail
with star links, answers per product, comments, the reviews API, stats (JSON and CSV),
a low review's follow-up rule, scanners, erasure."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.config import Settings
from app.models import Message, ProductReview
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from app.stats.rollup import fold_stats
from tests.conftest import Api, FrozenClock
from tests.dashboard.conftest import sign_in
from tests.factories import order_created, order_event, post_event
from tests.smtp_sink import SmtpSink
from tests.survey.conftest import BROWSER, FURNITURE, answer, comment

RULES = """
rules:
  - id: review-request
    kind: transactional
    when: {event: order.fulfilled}
    send: {after: 0m}
    template: product-review
    review: {per: item}
  - id: sorry-to-hear
    kind: transactional
    when: {event: review.answered}
    send: {after: 0m}
    template: thank-you
    if: {stars: {max: 2}}
"""
_STAR = re.compile(r"https?://[^\s\"'<>]+/r/([A-Za-z0-9_-]{60})/([1-5])")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    (settings.rules_dir / "rules.yaml").write_text(RULES)
    return settings


async def deliver(
    client: AsyncClient, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> list[Any]:
    """An order of two products, fulfilled: one request per product, sent."""
    body = order_created(items=FURNITURE)
    assert (await post_event(client, body)).status_code == 200
    assert (
        await post_event(client, order_event("order.fulfilled", body["order"]["id"]))
    ).status_code == 200
    clock.advance(hours=1)  # fulfilled at 11:00
    assert (await dispatcher.run_once()).outcomes == {"sent": 2}
    # Sent side by side: put the wardrobe's first.
    return sorted(
        smtp_sink.received[-2:], key=lambda mail: "wardrobe" not in mail.message["Subject"]
    )


def star_urls(html: str) -> dict[int, str]:
    return {int(m.group(2)): m.group(0) for m in _STAR.finditer(html)}


async def reviews(runtime: Runtime) -> list[ProductReview]:
    async with runtime.session_factory() as session:
        return list(
            (await session.execute(select(ProductReview).order_by(ProductReview.id))).scalars()
        )


async def test_one_request_per_product_rated_commented_listed_and_counted(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    api: Api,
) -> None:
    wardrobe, anchors = await deliver(client, dispatcher, smtp_sink, clock)
    assert wardrobe.message["Subject"] == "How do you like your Kids' wardrobe?"
    assert anchors.message["Subject"] == "How do you like your Wall anchor kit?"
    first, second = star_urls(wardrobe.part("text/html")), star_urls(anchors.part("text/html"))
    assert sorted(first) == [1, 2, 3, 4, 5] and sorted(second) == [1, 2, 3, 4, 5]
    assert "1: http" in wardrobe.part("text/plain")  # the text part's star lines
    clock.advance(minutes=30)
    page = await answer(client, first[5])
    assert page.status_code == 200 and "Your answer: 5 out of 5." in page.text
    assert (await comment(client, first[5], "Sturdy and easy to build.")).status_code == 200
    clock.advance(minutes=1)
    assert (await answer(client, second[2])).status_code == 200
    stored = await reviews(runtime)
    assert [(r.sku, r.stars, r.class_, r.comment) for r in stored] == [
        ("KF-WARDROBE", 5, "human", "Sturdy and easy to build."),
        ("KF-ANCHOR", 2, "human", None),
    ]
    # A tampered link or stars off 1-5: the same 404, nothing recorded.
    token = first[5].rsplit("/", 2)[1]
    assert (await answer(client, f"/r/{token}/6")).status_code == 404
    assert (await answer(client, f"/r/{token[:-2]}AA/3")).status_code == 404
    # The reviews API, paged, filtered, with comments.
    found = await client.get("/api/v1/reviews", headers=api.headers)
    assert found.status_code == 200, found.text
    assert [(r["sku"], r["stars"], r["comment"]) for r in found.json()["items"]] == [
        ("KF-ANCHOR", 2, None),
        ("KF-WARDROBE", 5, "Sturdy and easy to build."),
    ]
    low = await client.get("/api/v1/reviews", params={"max_stars": 2}, headers=api.headers)
    assert [r["sku"] for r in low.json()["items"]] == ["KF-ANCHOR"]
    paged = await client.get("/api/v1/reviews", params={"limit": 1}, headers=api.headers)
    cursor = paged.json()["next_cursor"]
    rest = await client.get("/api/v1/reviews", params={"cursor": cursor}, headers=api.headers)
    assert [r["sku"] for r in rest.json()["items"]] == ["KF-WARDROBE"]
    assert (await client.get("/api/v1/reviews")).status_code == 401
    # Stats per product and per category, JSON and CSV.
    day = clock.now().date().isoformat()
    stats = await client.get(
        "/api/v1/stats/reviews", params={"from": day, "to": day}, headers=api.headers
    )
    assert stats.status_code == 200, stats.text
    rows = {row["key"]: row for row in stats.json()["rows"]}
    assert (rows["KF-WARDROBE"]["average"], rows["KF-WARDROBE"]["stars_5"]) == (5.0, 1)
    assert (rows["KF-ANCHOR"]["reviews"], rows["KF-ANCHOR"]["stars_2"]) == (1, 1)
    by_category = await client.get(
        "/api/v1/stats/reviews",
        params={"from": day, "to": day, "by": "category"},
        headers=api.headers,
    )
    assert {row["key"] for row in by_category.json()["rows"]} == {
        "kids/furniture",
        "kids/accessories",
    }
    csv = await client.get(
        "/api/v1/stats/reviews",
        params={"from": day, "to": day, "format": "csv"},
        headers=api.headers,
    )
    assert csv.text.splitlines()[0].startswith("key,name,reviews,average,stars_1")
    # The dashboard shows the same figures (once the rollup has folded the mail in).
    await fold_stats(runtime, settle=timedelta(0))
    await sign_in(client)
    page = await client.get("/dashboard", params={"from": day, "to": day})
    assert page.status_code == 200
    products = page.text.split('<table data-reviews="product">')[1].split("</table>")[0]
    wardrobe_row = products.split('<tr data-key="KF-WARDROBE">')[1].split("</tr>")[0]
    assert '<td data-field="average">5.00</td>' in wardrobe_row
    assert '<td data-field="stars_5">1</td>' in wardrobe_row
    assert '<table data-reviews="category">' in page.text
    # The 2-star review planned the follow-up rule (held for the burst window); the 5 none.
    clock.advance(seconds=runtime.settings.tracking_burst_seconds + 1)
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    async with runtime.session_factory() as session:
        rules = (await session.execute(select(Message.rule_id).order_by(Message.id))).scalars()
        assert list(rules) == ["review-request", "review-request", "sorry-to-hear"]


async def test_a_scanner_clicking_every_star_counts_nothing_and_plans_nothing(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
) -> None:
    wardrobe, _ = await deliver(client, dispatcher, smtp_sink, clock)
    clock.advance(minutes=5)
    for stars in (1, 2, 3, 4, 5):  # a browser-like scanner following every link
        await answer(client, star_urls(wardrobe.part("text/html"))[stars], agent=BROWSER)
        clock.advance(seconds=0.2)
    [review] = await reviews(runtime)
    assert (review.class_, review.reason) == ("machine", "survey_burst")
    clock.advance(minutes=5)
    assert (await dispatcher.run_once()).outcomes == {}
    async with runtime.session_factory() as session:
        statuses = (await session.execute(select(Message.rule_id, Message.status))).all()
    assert ("sorry-to-hear", "scheduled") not in [tuple(s) for s in statuses]


async def test_erasure_blanks_the_comment_and_keeps_the_stars(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    api: Api,
) -> None:
    wardrobe, _ = await deliver(client, dispatcher, smtp_sink, clock)
    clock.advance(minutes=5)
    url = star_urls(wardrobe.part("text/html"))[4]
    await answer(client, url)
    await comment(client, url, "Anna from Berlin says hi")
    # The factory's customer, by the shop's id.
    erased = await client.delete("/api/v1/customers/c-1001", headers=api.headers)
    assert erased.status_code == 200, erased.text
    [review] = await reviews(runtime)
    assert (review.stars, review.comment, review.user_agent, review.ip) == (4, None, None, None)
