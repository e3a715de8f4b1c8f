"""Mail whose links sell, end to end: a real Shopify order comes in, the restock reminder goes
out through a real SMTP server with the product's picture and a Reorder button, every web link
in it is tracked, the customer clicks Reorder through the app, and the order they then place
converts for the reminder. A shop that has told us nothing gets mail without broken links."""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event, select

from app.config import Settings
from app.models import Conversion, Message, TrackedLink
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock, Visitor
from tests.factories import order_created, post_event
from tests.intake.test_shopify import NEW_SECRET, SHOP, payload, post_shopify
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.smtp_sink import SmtpSink
from tests.tracking.test_tracking_flow import BROWSER, ReadMail, fetch

STOREFRONT = "https://baby-goods.example"
ADDRESS = "Baby Goods GmbH, Torstraße 12, 10119 Berlin, Germany"
PRODUCT_URL = f"{STOREFRONT}/products/diapers-m?variant=808950810123456789"
IMAGE_URL = "https://cdn.shopify.com/s/files/1/0612/3456/files/diapers-m.jpg?v=1731400000"
# The variant of the order's DIAPER-M-60 line (tests/intake/payloads/shopify_order_create.json)
# and its quantity: Shopify's cart permalink.
REORDER_URL = f"{STOREFRONT}/cart/808950810123456789:2"
RESTOCK = """
rules:
  - id: diapers-restock
    kind: marketing
    when:
      event: order.created
      items: {sku: ["DIAPER-*"]}
    send: {after: 0m}
    template: diapers-restock
"""
_WEB_URL = re.compile(r"https?://[^\s<>\"']+")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "shopify_secrets": [f"{SHOP}={NEW_SECRET}"],
            # The shop's storefront is not its myshopify.com domain.
            "shop_urls": {SHOP: STOREFRONT},
            "shop_address": ADDRESS,
        }
    )


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-links")
    yield worker
    await worker.sender.close()


def shopify_product() -> dict[str, Any]:
    """The catalog entry of the order's diapers, as `PUT /api/v1/products` takes it."""
    return {
        "shop": SHOP,
        "platform": "shopify",
        "currency": "EUR",
        "products": [
            {
                "id": "632910392011223344",
                "handle": "diapers-m",
                "title": "Öko-Windeln M",
                "product_type": "Windeln",
                "vendor": "Lillydoo",
                "categories": ["Baby & Toddler > Diapering > Diapers"],
                "url": f"{STOREFRONT}/products/diapers-m",
                "image_url": IMAGE_URL,
                "variants": [
                    {
                        "id": "808950810123456789",
                        "sku": "DIAPER-M-60",
                        "title": "60 Stück",
                        "price": "24.90",
                        "url": PRODUCT_URL,
                    }
                ],
            }
        ],
    }


def web_links(html: str, text: str) -> tuple[list[str], list[str], list[str]]:
    """The http(s) links a reader can follow in each part, and the pictures' sources."""
    reader = ReadMail()
    reader.feed(html)
    hrefs = [href for href, _ in reader.links if href.startswith(("http://", "https://"))]
    return hrefs, _WEB_URL.findall(text), reader.images


async def test_a_click_on_reorder_then_a_purchase_converts(
    client: AsyncClient,
    visitor: Visitor,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RESTOCK)
    response = await client.put("/api/v1/products", json=shopify_product(), headers=api.headers)
    assert response.status_code == 200, response.text
    order = payload("order_create")
    response = await post_shopify(client, "orders/create", order)
    assert response.status_code == 200, response.text
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}

    mail = smtp_sink.received[-1]
    html, text = mail.part("text/html"), mail.part("text/plain")
    base = runtime.settings.public_url
    hrefs, text_urls, images = web_links(html, text)
    # Every web link of both parts is a tracked click, but the unsubscribe link (RFC 8058).
    untracked = [url for url in hrefs + text_urls if not url.startswith(f"{base}/c/")]
    assert all(url.startswith(f"{base}/u/") for url in untracked), untracked
    assert untracked, "marketing mail has its unsubscribe link"
    # No original URL is left to click; the product's picture is shown from the shop's CDN.
    for target in (STOREFRONT, "cdn.shopify.com/s/files/1/0612/3456/files/diapers-m.jpg?"):
        assert target not in text
    assert IMAGE_URL.replace("&", "&amp;") in images or IMAGE_URL in images
    # The customer's locale is Russian: the Russian template.
    assert "Diapers M, 60 pcs" in html and "Заказать снова: " in text
    # Marketing mail carries the postal address, in both parts.
    assert ADDRESS in html and ADDRESS in text

    async with runtime.session_factory() as session:
        [message] = (await session.execute(select(Message))).scalars()
        links = {
            url: link_id
            for url, link_id in await session.execute(
                select(TrackedLink.url, TrackedLink.id).where(TrackedLink.url.is_not(None))
            )
        }
    assert set(links) == {PRODUCT_URL, REORDER_URL}

    # The reader clicks Reorder (the button's link) twenty minutes later, in a browser.
    reorder = _tracked_link_for(html, "Заказать снова")
    clock.advance(minutes=20)
    click = await fetch(visitor("198.51.100.7"), reorder, agent=BROWSER)
    assert click.status_code == 302 and click.headers["location"] == REORDER_URL

    # ... and buys: Shopify's next order of the same customer converts for the reminder.
    clock.advance(minutes=10)
    again = copy.deepcopy(order)
    again.update(
        id=820982911946155000,
        name="#1043",
        order_number=1043,
        created_at="2026-11-20T13:35:00+03:00",
        processed_at="2026-11-20T13:35:00+03:00",
    )
    response = await post_shopify(client, "orders/create", again)
    assert response.status_code == 200, response.text
    async with runtime.session_factory() as session:
        [conversion] = (await session.execute(select(Conversion))).scalars()
    assert (conversion.message_id, conversion.via) == (message.id, "click")
    assert conversion.revenue == Decimal(order["total_price"])


def _tracked_link_for(html: str, label: str) -> str:
    """The href of the (last) link whose text is `label`."""
    found = re.findall(r'<a href="([^"]+)"[^>]*>\s*' + re.escape(label) + r"\s*</a>", html)
    assert found, f"no {label!r} link"
    return str(found[-1]).replace("&amp;", "&")


async def test_a_shop_that_told_us_nothing_gets_no_broken_links(
    client: AsyncClient,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    """Our JSON, no SHOP_URL, no REORDER_URL, no catalog: the restock mail names the items and
    offers no link but unsubscribe; nothing is an empty or "None" link."""
    use_rules(runtime, tmp_path, RESTOCK.replace("kind: marketing", "kind: transactional"))
    runtime.settings = runtime.settings.model_copy(
        update={"shop_urls": {}, "shop_address": None, "tracking_enabled": False}
    )
    response = await post_event(client, order_created(order_id="7001"))
    assert response.status_code == 200, response.text
    assert (await dispatcher.run_once()).outcomes == {"sent": 1}
    mail = smtp_sink.received[-1]
    html, text = mail.part("text/html"), mail.part("text/plain")
    hrefs, text_urls, images = web_links(html, text)
    assert hrefs == [] and text_urls == [] and images == []
    assert 'href=""' not in html and "None" not in html and "None" not in text
    assert "Diapers M, 60 pcs" in html and "Reorder" not in html


async def test_the_catalog_is_read_once_per_batch_not_per_message(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    use_rules(runtime, tmp_path, RESTOCK)
    catalog = shopify_product() | {"shop": "default", "platform": "custom"}
    response = await client.put("/api/v1/products", json=catalog, headers=api.headers)
    assert response.status_code == 200, response.text
    for number in range(6):
        body = order_created(
            order_id=f"81{number}", customer_id=f"c-{number}", email=f"kunde{number}@example.org"
        )
        response = await post_event(client, body)
        assert response.status_code == 200, response.text

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if re.search(r"\bFROM products?(_variants)?\b", statement):
            statements.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert (await dispatcher.run_once()).outcomes == {"sent": 6}
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # Intake linked the six orders' items to their product (by SKU: our JSON's orders name
    # no ids); the batch reads those products and their variants once, for all six messages.
    assert len(statements) <= 2, statements
    assert all(" IN (" in statement for statement in statements), statements
    for mail in smtp_sink.received[-6:]:
        html = mail.part("text/html")
        assert f"{runtime.settings.public_url}/c/" in html and IMAGE_URL.split("?")[0] in html
