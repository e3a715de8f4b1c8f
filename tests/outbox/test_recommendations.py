"""A rule with `recommend`, from webhook to a real SMTP server: the products the catalog
picks arrive in the mail, with links that lead to them, and what the customer owns does not."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient

from app.catalog import repository
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.catalog.shop_history import EXPECTED, TITLES, URLS, anna_order, load_shop
from tests.conftest import Api, FrozenClock
from tests.factories import post_event
from tests.outbox.conftest import use_rules
from tests.smtp_sink import SmtpSink

RULE = """
rules:
  - id: coffee-next-variety
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 0m}
    template: coffee-next-variety
    recommend: {count: 3, from: co_purchase, exclude: owned}
"""


async def test_recommended_products_arrive_with_working_links(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    (tmp_path / "none").mkdir()
    use_rules(runtime, tmp_path / "none", "rules: []\n")  # the history plans no mail
    await load_shop(client, api)
    (tmp_path / "rule").mkdir()
    use_rules(runtime, tmp_path / "rule", RULE)
    await post_event(client, anna_order("COF-ETH-500"))

    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    [mail] = smtp_sink.received
    html, text = mail.part("text/html"), mail.part("text/plain")
    for sku in EXPECTED:
        assert TITLES[sku] in html and TITLES[sku] in text, sku
    # Owned (Kenya, her earlier order) and out of stock (Guatemala): never shown.
    for sku in ("COF-KEN-500", "COF-GUA-500"):
        assert TITLES[sku] not in html and TITLES[sku] not in text, sku
    # In the order the ranking gave, each with its price and image.
    positions = [text.index(TITLES[sku]) for sku in EXPECTED]
    assert positions == sorted(positions)
    assert "€13.90" in text and "€249.00" in html
    assert f'src="{URLS["COF-BRA-500"].replace("/products/", "/images/")}.jpg"' in html

    # Links are tracked: each leads, through the click redirect, to the product's page.
    public = runtime.settings.public_url
    tracked = set(re.findall(rf"{re.escape(public)}/c/[\w.-]+", text))
    assert tracked, text
    destinations = set()
    for link in tracked:
        response = await client.get(urlsplit(link).path)
        assert response.status_code == 302
        destinations.add(response.headers["location"])
    assert {URLS[sku] for sku in EXPECTED} <= destinations
    assert URLS["COF-KEN-500"] not in destinations


async def test_rules_without_recommend_show_none(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    await post_event(client, anna_order("COF-ETH-500"))
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}  # the thank-you
    [mail] = smtp_sink.received
    assert "Picked for you" not in mail.part("text/plain")


async def test_a_batch_reads_co_purchases_once_and_later_batches_use_the_cache(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "none").mkdir()
    use_rules(runtime, tmp_path / "none", "rules: []\n")
    await load_shop(client, api)
    (tmp_path / "rule").mkdir()
    use_rules(runtime, tmp_path / "rule", RULE)
    reads: list[int] = []
    original = repository.purchases_of_buyers

    async def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(len(kwargs["product_keys"]))
        return await original(*args, **kwargs)

    monkeypatch.setattr(repository, "purchases_of_buyers", counted)

    async def order_and_send(customer: str) -> None:
        body = anna_order("COF-ETH-500")
        body["customer"].update(id=customer, email=f"{customer}@example.org")
        await post_event(client, body)

    await order_and_send("c-x1")
    await order_and_send("c-x2")
    assert (await dispatcher.run_once()).outcomes == {"sent": 2}
    assert reads == [1]  # one read for the batch's one seed product, not one per message
    await order_and_send("c-x3")
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert reads == [1]  # within RECOMMEND_CACHE_SECONDS: nothing read again
    clock.advance(seconds=runtime.settings.recommend_cache_seconds + 1)
    await order_and_send("c-x4")
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    assert reads == [1, 1]
    # They do not own Kenya, as Anna does: it comes first for them.
    for mail in smtp_sink.received:
        text = mail.part("text/plain")
        shown = ["COF-KEN-500", "COF-BRA-500", "GRINDER-HAND"]
        assert all(TITLES[sku] in text for sku in shown), text
