"""Shopify intake: the pure mapping of its payloads, and POST /webhooks/shopify signed as
Shopify signs, through the ASGI app into the database."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select

from app.config import Settings
from app.events import (
    CustomerDeleted,
    CustomerUpdated,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.intake import shopify
from app.intake.payloads import PayloadError, guest_customer_id
from app.intake.signature import sign_body_base64
from app.models import Customer, IntakeFailure, Message, Order, OrderItem, WebhookDelivery
from app.runtime import Runtime
from app.shops import secrets_for_host
from tests.intake.mapping import map_event
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink

PAYLOADS = Path(__file__).parent / "payloads"


def shopify_event(topic: str, body: dict[str, Any], **given: Any) -> Any:
    return map_event(shopify.PLATFORM, topic, body, **given)


SHOP = "baby-goods.myshopify.com"
TEA_SHOP = "tea-house.myshopify.com"
OLD_SECRET = "shpss_0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld"
NEW_SECRET = "shpss_n3wn3wn3wn3wn3wn3wn3wn3wn3wn3"
TEA_SECRET = "shpss_7ea7ea7ea7ea7ea7ea7ea7ea7ea7ea"
RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / f"shopify_{name}.json").read_text())
    return loaded


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Two secrets for the baby shop (a rotation in progress), one for the tea shop.
    return settings.model_copy(
        update={
            "shopify_secrets": [
                f"{SHOP}={OLD_SECRET}",
                f"{SHOP}={NEW_SECRET}",
                f"{TEA_SHOP}={TEA_SECRET}",
            ]
        }
    )


async def post_shopify(
    client: AsyncClient,
    topic: str,
    body: dict[str, Any] | bytes,
    *,
    shop: str = SHOP,
    secret: str | None = NEW_SECRET,
    event_id: str | None = None,
    webhook_id: str | None = None,
) -> Response:
    """POST as Shopify does: raw UTF-8 JSON, base64 HMAC-SHA256 of the body, its headers."""
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-20T10:00:00.000000Z",
    }
    if event_id is not None or webhook_id is None:
        headers["X-Shopify-Event-Id"] = event_id or str(uuid.uuid4())
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign_body_base64(secret, raw)
    return await client.post("/webhooks/shopify", content=raw, headers=headers)


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def messages(runtime: Runtime) -> list[Message]:
    async with runtime.session_factory() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


# --- mapping -------------------------------------------------------------------------------


def test_order_maps_ids_money_items_and_customer() -> None:
    event = shopify_event(
        "orders/create", payload("order_create"), event_id="e-1", received_at=RECEIVED
    )
    assert isinstance(event, OrderPlaced)
    assert (event.id, event.type) == ("e-1", "order.created")
    assert event.occurred_at == datetime(2026, 11, 20, 9, 59, tzinfo=UTC)
    order, customer = event.order, event.customer
    assert (order.id, order.currency, order.total) == (
        "820982911946154508",
        "EUR",
        Decimal("70.86"),
    )
    assert [(i.sku, i.quantity, i.unit_price, i.category) for i in order.items] == [
        ("DIAPER-M-60", 2, Decimal("24.90"), "baby/diapers"),
        ("WIPES-72", 3, Decimal("4.50"), "baby-care/wipes"),
        ("TEETHER-MINT", 1, Decimal("9.99"), None),
    ]
    assert order.items[1].name == "Влажные салфетки «Нежность», 72 шт."
    assert order.items[0].attributes == {
        "vendor": "Softy",
        "product_id": "632910392011223344",
        "variant_id": "808950810123456789",
        "variant_title": "Size 3",
    }
    assert customer.id == "115310627314723954"
    assert (customer.first_name, customer.last_name) == ("Анна", "Иванова")
    assert (customer.locale, customer.country) == ("ru", "RU")
    assert customer.tags == ["newsletter", "mama-club"]
    assert customer.marketing_consent is True


def test_items_carry_the_product_and_variant_ids_and_a_custom_item_none() -> None:
    body = payload("order_create")
    # A custom item (added by hand in the admin) has no product: Shopify sends nulls.
    body["line_items"][2].update(product_id=None, variant_id=None, sku=None)
    event = shopify_event("orders/create", body, event_id="e", received_at=RECEIVED)
    assert isinstance(event, OrderPlaced)
    assert [(i.product_id, i.variant_id) for i in event.order.items] == [
        ("632910392011223344", "808950810123456789"),
        ("921728736012345678", "457924702123456789"),
        (None, None),
    ]


def test_guest_checkout_gets_a_stable_id_from_the_order_email() -> None:
    body = payload("order_create_guest")
    event = shopify_event("orders/create", body, event_id="e-2", received_at=RECEIVED)
    assert isinstance(event, OrderPlaced)
    customer = event.customer
    assert customer.id == guest_customer_id("hanako.yamada@example.jp")
    assert customer.id.startswith("guest:") and "@" not in customer.id
    assert (customer.first_name, customer.last_name, customer.country) == ("花子", "山田", "JP")
    assert customer.locale == "ja"
    assert customer.marketing_consent is True  # buyer_accepts_marketing: all a guest has
    assert [(i.sku, i.category) for i in event.order.items] == [
        ("HOJICHA-100", "tea"),
        (None, None),
    ]
    assert event.order.total == Decimal("5980")
    body["email"] = body["contact_email"] = "  HANAKO.yamada@example.jp "
    again = shopify_event("orders/create", body, event_id="e-3", received_at=RECEIVED)
    assert isinstance(again, OrderPlaced) and again.customer.id == customer.id


@pytest.mark.parametrize(
    ("name", "consent"),
    [("customer_update", False), ("customer_update_legacy", True)],
)
def test_consent_in_both_payload_styles(name: str, consent: bool) -> None:
    event = shopify_event("customers/update", payload(name), event_id="e-4", received_at=RECEIVED)
    assert isinstance(event, CustomerUpdated)
    assert event.customer.marketing_consent is consent


def test_consent_states_other_than_subscribed_are_no_consent() -> None:
    body = payload("customer_update")
    for state, expected in [("subscribed", True), ("pending", False), ("not_subscribed", False)]:
        body["email_marketing_consent"]["state"] = state
        event = shopify_event("customers/update", body, event_id="e", received_at=RECEIVED)
        assert isinstance(event, CustomerUpdated)
        assert event.customer.marketing_consent is expected


def test_legacy_customer_keeps_cjk_names_and_tags() -> None:
    event = shopify_event(
        "customers/create", payload("customer_update_legacy"), event_id="e", received_at=RECEIVED
    )
    assert isinstance(event, CustomerUpdated)
    assert (event.customer.first_name, event.customer.last_name) == ("伟", "李")
    assert event.customer.country == "CN"
    assert event.occurred_at == datetime(2021, 6, 2, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize("topic", ["fulfillments/create", "fulfillments/update"])
def test_a_delivered_fulfilment_is_the_delivery_other_statuses_are_not(topic: str) -> None:
    body = payload("fulfillment_update_delivered")
    event = shopify_event(topic, body, event_id="e", received_at=RECEIVED)
    assert isinstance(event, OrderFulfilled) and event.type == "order.delivered"
    assert event.order.id == "820982911946154508"
    assert event.occurred_at == datetime(2026, 11, 23, 11, 2, 11, tzinfo=UTC)
    for status in ("in_transit", "out_for_delivery", None):
        body["shipment_status"] = status
        assert shopify_event(topic, body, event_id="e", received_at=RECEIVED) is None


def test_the_order_number_properties_and_note_attributes() -> None:
    body = payload("order_create")
    body["note_attributes"] = [
        {"name": "gift_message", "value": "С днём рождения, Маша!"},
        {"name": "delivery_window", "value": "18:00-21:00"},
        {"name": "_checkout_session", "value": "f3a9"},  # the shop's private field
    ]
    body["line_items"][0]["properties"] = [
        {"name": "Engraving", "value": "Маша"},
        {"name": "_bundle_id", "value": "b-17"},
    ]
    event = shopify_event("orders/create", body, event_id="e", received_at=RECEIVED)
    assert isinstance(event, OrderPlaced)
    # "#1042" is what the customer knows; the id stays the platform's.
    assert (event.order.id, event.order.number) == ("820982911946154508", "1042")
    assert event.order.attributes == {
        "gift_message": "С днём рождения, Маша!",
        "delivery_window": "18:00-21:00",
    }
    assert event.order.items[0].attributes["Engraving"] == "Маша"
    assert "_bundle_id" not in event.order.items[0].attributes
    assert event.order.items[2].attributes["Colour"] == "Mint"  # as the payload carries it
    assert event.order.items[0].attributes["variant_id"] == "808950810123456789"


def test_order_topics_for_fulfilment_cancellation_and_refund() -> None:
    order = payload("order_create")
    order["fulfillments"] = [
        {"id": 1, "created_at": "2026-11-21T09:15:00+03:00"},
        {"id": 2, "created_at": "2026-11-21T08:00:00+01:00"},  # the later one, in UTC
    ]
    fulfilled = shopify_event("orders/fulfilled", order, event_id="e", received_at=RECEIVED)
    assert isinstance(fulfilled, OrderFulfilled)
    assert fulfilled.occurred_at == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    assert fulfilled.customer is not None and fulfilled.customer.first_name == "Анна"

    order.update(cancelled_at="2026-11-20T14:00:00+03:00", cancel_reason="customer")
    cancelled = shopify_event("orders/cancelled", order, event_id="e", received_at=RECEIVED)
    assert isinstance(cancelled, OrderClosed)
    assert (cancelled.type, cancelled.order.id) == ("order.cancelled", "820982911946154508")
    assert cancelled.occurred_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

    refunded = shopify_event(
        "refunds/create", payload("refund_create"), event_id="e", received_at=RECEIVED
    )
    assert isinstance(refunded, OrderClosed)
    assert (refunded.type, refunded.order.id) == ("order.refunded", "820982911946154508")
    assert refunded.items is not None
    assert [(item.sku, item.quantity) for item in refunded.items] == [("WIPES-72", 1)]
    amount_only = payload("refund_create")
    amount_only["refund_line_items"] = []
    assert shopify_event("refunds/create", amount_only, event_id="e", received_at=RECEIVED) is None


def test_redact_deletes_the_customer_and_unknown_topics_map_to_nothing() -> None:
    redact = shopify_event(
        "customers/redact", payload("customers_redact"), event_id="e", received_at=RECEIVED
    )
    assert isinstance(redact, CustomerDeleted)
    assert (redact.customer.id, redact.occurred_at) == ("115310627314723954", RECEIVED)
    for topic in ("products/update", "orders/updated", "app/uninstalled", ""):
        assert (
            shopify_event(topic, payload("order_create"), event_id="e", received_at=RECEIVED)
            is None
        )


def test_an_order_without_any_email_is_nothing_to_send() -> None:
    body = payload("order_create_guest")
    body["email"] = body["contact_email"] = ""
    assert shopify_event("orders/create", body, event_id="e", received_at=RECEIVED) is None


def test_unreadable_payloads_raise_one_error_naming_the_field_not_the_value() -> None:
    body = payload("order_create")
    body["total_price"] = "seventy"
    with pytest.raises(PayloadError) as caught:
        shopify_event("orders/create", body, event_id="e", received_at=RECEIVED)
    assert "order.total" in str(caught.value) and "seventy" not in str(caught.value)
    with pytest.raises(PayloadError, match="missing field 'order_id'"):
        shopify_event("refunds/create", {"id": 1}, event_id="e", received_at=RECEIVED)
    broken = payload("order_create")
    broken["line_items"] = []
    with pytest.raises(PayloadError, match=r"order\.items"):
        shopify_event("orders/create", broken, event_id="e", received_at=RECEIVED)


def test_odd_locale_time_zone_and_tags_do_not_lose_the_order() -> None:
    body = payload("order_create")
    body["customer_locale"] = "not a locale"
    body["customer"]["time_zone"] = "Mars/Olympus"
    body["customer"]["tags"] = ", ".join(f"tag-{n}" for n in range(80)) + ", " + "x" * 150
    event = shopify_event("orders/create", body, event_id="e", received_at=RECEIVED)
    assert isinstance(event, OrderPlaced)
    assert (event.customer.locale, event.customer.time_zone) == (None, None)
    assert len(event.customer.tags) == 50


def test_triggered_at_header() -> None:
    assert shopify.triggered_at("2026-11-20T09:00:00.123Z", RECEIVED) == datetime(
        2026, 11, 20, 9, 0, 0, 123000, tzinfo=UTC
    )
    assert shopify.triggered_at("yesterday", RECEIVED) == RECEIVED
    assert shopify.triggered_at(None, RECEIVED) == RECEIVED


def test_secrets_per_shop_and_for_every_shop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AFTERSALE_SHOPIFY_SECRETS", f"{SHOP}={OLD_SECRET}, {NEW_SECRET}, {TEA_SHOP}=ab=cd="
    )
    entries = Settings(_env_file=None).shopify_secrets  # type: ignore[call-arg]
    assert secrets_for_host(entries, SHOP.upper()) == [OLD_SECRET, NEW_SECRET]
    assert secrets_for_host(entries, TEA_SHOP) == [NEW_SECRET, "ab=cd="]
    assert secrets_for_host(entries, "elsewhere.myshopify.com") == [NEW_SECRET]
    # A bare secret may hold `=` (base64): only a host name before it makes a pair.
    assert secrets_for_host(["c2VjcmV0c2VjcmV0=="], None) == ["c2VjcmV0c2VjcmV0=="]


def test_platform_secrets_in_development_and_production() -> None:
    development = Settings(_env_file=None)  # type: ignore[call-arg]
    assert development.shopify_secrets == ["dev-shopify-secret"]
    strong = "s" * 32
    production: dict[str, Any] = {
        "env": "production",
        "secret_key": strong,
        "webhook_secret": strong + "w",
        "api_keys": [strong + "k"],
        "unsubscribe_secrets": [strong + "u"],
        "tracking_secrets": [strong + "t"],
        "survey_secrets": [strong + "s"],
        "session_secret": strong + "c",
        "smtp_url": "smtp://mail.example.org:587",
        "mail_from": "Teeladen Anna <post@teeladen-anna.de>",
        "_env_file": None,
    }
    assert Settings(**production).shopify_secrets == []  # not configured: all refused
    assert Settings(**production, shopify_secrets=f"{SHOP}={strong}").shopify_secrets
    with pytest.raises(ValueError, match=r"AFTERSALE_SHOPIFY_SECRETS \(secret 2\)"):
        Settings(**production, shopify_secrets=f"{strong}, {SHOP}=changeme")
    with pytest.raises(ValueError, match="no secret"):
        Settings(_env_file=None, shopify_secrets=f"{SHOP}=")  # type: ignore[call-arg]


# --- through the app -----------------------------------------------------------------------


async def test_order_is_stored_and_thank_you_planned(client: AsyncClient, runtime: Runtime) -> None:
    response = await post_shopify(client, "orders/create", payload("order_create"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["messages_planned"] == 1
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
        items = (await session.execute(select(OrderItem).order_by(OrderItem.position))).scalars()
        delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
    assert (order.shop, order.external_id, order.currency) == (SHOP, "820982911946154508", "EUR")
    assert order.total == Decimal("70.86")
    assert (customer.external_id, customer.first_name, customer.last_name) == (
        "115310627314723954",
        "Анна",
        "Иванова",
    )
    assert customer.marketing_consent is True and customer.locale == "ru"
    # The platform's ids, as text: what finds the catalog product (none is known yet).
    assert [
        (item.sku, item.category, item.product_ref, item.variant_ref, item.catalog_product_id)
        for item in items
    ] == [
        ("DIAPER-M-60", "baby/diapers", "632910392011223344", "808950810123456789", None),
        ("WIPES-72", "baby-care/wipes", "921728736012345678", "457924702123456789", None),
        ("TEETHER-MINT", None, "788032119123456789", "39072856123456789", None),
    ]
    # The topic as received: what a replay of the raw body maps it by.
    assert (delivery.source, delivery.shop, delivery.event_type) == (
        "shopify",
        SHOP,
        "orders/create",
    )
    assert "Анна" in delivery.body  # stored as received, not escaped
    [message] = await messages(runtime)
    assert (message.rule_id, message.status) == ("thank-you", "scheduled")


async def test_non_latin_names_reach_the_mailbox(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await post_shopify(client, "orders/create", payload("order_create"))
    await post_shopify(client, "orders/create", payload("order_create_guest"))
    dispatcher = make_dispatcher(runtime, "worker-shopify")
    try:
        report = await dispatcher.run_once()
    finally:
        await dispatcher.sender.close()
    assert report.outcomes == {"sent": 2}
    mail = {received.recipients[0]: received for received in smtp_sink.received}
    russian = mail["anna.ivanova@example.org"].part("text/plain")
    assert "Анна" in russian and "Спасибо" in russian
    assert "Влажные салфетки «Нежность», 72 шт." in russian
    guest = mail["hanako.yamada@example.jp"]
    assert "花子" in guest.part("text/plain") and "有機ほうじ茶 100g" in guest.part("text/plain")


async def test_guest_orders_are_one_customer(client: AsyncClient, runtime: Runtime) -> None:
    first = payload("order_create_guest")
    second = copy.deepcopy(first)
    second["id"] = 820982911946154612
    second["email"] = "hanako.yamada@example.jp"
    for body in (first, second):
        assert (await post_shopify(client, "orders/create", body)).json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.external_id == guest_customer_id("hanako.yamada@example.jp")
    assert customer.email == "hanako.yamada@example.jp" and customer.marketing_consent is True
    assert await count(runtime, Order) == 2


async def test_bad_or_missing_signature_is_refused(client: AsyncClient, runtime: Runtime) -> None:
    body = payload("order_create")
    response = await post_shopify(client, "orders/create", body, secret="shpss_someone_else")
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    assert (await post_shopify(client, "orders/create", body, secret=None)).status_code == 401
    raw = json.dumps(body).encode()
    tampered = await client.post(
        "/webhooks/shopify",
        content=raw + b" ",
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Hmac-Sha256": sign_body_base64(NEW_SECRET, raw),
        },
    )
    assert tampered.status_code == 401
    no_shop = await client.post(
        "/webhooks/shopify",
        content=raw,
        headers={"X-Shopify-Hmac-Sha256": sign_body_base64(NEW_SECRET, raw)},
    )
    assert no_shop.status_code == 401
    assert await count(runtime, WebhookDelivery) == 0


async def test_old_and_new_secret_are_both_accepted_during_rotation(
    client: AsyncClient, runtime: Runtime
) -> None:
    old = await post_shopify(client, "orders/create", payload("order_create"), secret=OLD_SECRET)
    new = await post_shopify(
        client, "orders/create", payload("order_create_guest"), secret=NEW_SECRET
    )
    assert (old.status_code, new.status_code) == (200, 200)
    assert await count(runtime, Order) == 2


async def test_secrets_are_per_shop(client: AsyncClient, runtime: Runtime) -> None:
    body = payload("order_create_guest")
    wrong = await post_shopify(client, "orders/create", body, shop=TEA_SHOP, secret=NEW_SECRET)
    assert wrong.status_code == 401
    unknown = await post_shopify(
        client, "orders/create", body, shop="stranger.myshopify.com", secret=NEW_SECRET
    )
    assert unknown.status_code == 401
    right = await post_shopify(client, "orders/create", body, shop=TEA_SHOP, secret=TEA_SECRET)
    assert right.status_code == 200
    # The same order ids in two shops are two orders.
    await post_shopify(client, "orders/create", body, shop=SHOP)
    async with runtime.session_factory() as session:
        shops = (await session.execute(select(Order.shop).order_by(Order.shop))).scalars().all()
    assert shops == [SHOP, TEA_SHOP]


async def test_a_secret_without_a_shop_serves_every_shop(
    client: AsyncClient, runtime: Runtime
) -> None:
    every = "shpss_every_shop_0123456789abcdef"
    runtime.settings = runtime.settings.model_copy(update={"shopify_secrets": [every]})
    for shop in (SHOP, TEA_SHOP):
        response = await post_shopify(
            client, "orders/create", payload("order_create"), shop=shop, secret=every
        )
        assert response.status_code == 200, response.text


async def test_repeats_of_one_event_have_one_effect(client: AsyncClient, runtime: Runtime) -> None:
    body = payload("order_create")
    first = await post_shopify(client, "orders/create", body, event_id="evt-A", webhook_id="w-1")
    # The same event again, under another webhook id (a second subscription): a duplicate.
    second = await post_shopify(client, "orders/create", body, event_id="evt-A", webhook_id="w-2")
    assert (first.json()["status"], second.json()["status"]) == ("accepted", "duplicate")
    assert second.json()["event_id"] == "evt-A"
    # Without an event id, the webhook id (kept across Shopify's retries) is the delivery id.
    guest = payload("order_create_guest")
    third = await post_shopify(client, "orders/create", guest, webhook_id="w-3")
    retry = await post_shopify(client, "orders/create", guest, webhook_id="w-3")
    assert (third.json()["status"], retry.json()["status"]) == ("accepted", "duplicate")
    assert await count(runtime, WebhookDelivery) == 2
    assert await count(runtime, Message) == 2
    assert await count(runtime, OrderItem) == 5


async def test_unknown_topic_and_ignored_status_answer_200_and_change_nothing(
    client: AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.intake.service")
    unknown = await post_shopify(
        client, "collections/update", {"id": 482865238, "handle": "windeln", "title": "Windeln"}
    )
    assert unknown.status_code == 200
    assert unknown.json() == {
        "status": "ignored",
        "reason": "topic 'collections/update' is not handled",
    }
    transit = payload("fulfillment_update_delivered")
    transit["shipment_status"] = "in_transit"
    ignored = await post_shopify(client, "fulfillments/update", transit)
    assert (ignored.status_code, ignored.json()["status"]) == (200, "ignored")
    # Stored raw all the same (every authentic delivery is), and nothing else.
    assert await count(runtime, WebhookDelivery) == 2
    assert await count(runtime, IntakeFailure) == 0
    assert await count(runtime, Order) == 0
    assert "collections/update" in caplog.text


async def test_unreadable_authentic_delivery_answers_200_is_kept_and_logged(
    client: AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = payload("order_create")
    body["currency"] = "euro"
    response = await post_shopify(client, "orders/create", body)
    assert response.status_code == 200
    assert response.json()["status"] == "unmapped"
    assert "order.currency" in response.json()["reason"]
    broken = await post_shopify(client, "orders/create", b"{not json")
    assert (broken.status_code, broken.json()["status"]) == (200, "unmapped")
    # Kept to replay (tests/intake/test_intake_failures.py), nothing ingested.
    assert await count(runtime, IntakeFailure) == 2
    assert await count(runtime, Order) == 0
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 2 and "anna.ivanova" not in caplog.text


async def test_cancellation_cancels_pending_messages(client: AsyncClient, runtime: Runtime) -> None:
    order = payload("order_create")
    await post_shopify(client, "orders/create", order)
    order.update(cancelled_at="2026-11-20T13:30:00+03:00", cancel_reason="customer")
    response = await post_shopify(client, "orders/cancelled", order)
    assert response.json()["messages_cancelled"] == 1
    [message] = await messages(runtime)
    assert (message.status, message.status_reason) == ("cancelled", "order_cancelled")


async def test_a_refund_takes_back_only_its_lines(client: AsyncClient, runtime: Runtime) -> None:
    order = payload("order_create")
    await post_shopify(client, "orders/create", order)
    # One pack of wipes of three: the order stands, and so does its thank-you.
    response = await post_shopify(client, "refunds/create", payload("refund_create"))
    assert response.json()["messages_cancelled"] == 0
    async with runtime.session_factory() as session:
        stored = (await session.execute(select(Order))).scalar_one()
    assert stored.status == "open"
    assert [(r["sku"], r["quantity"]) for r in stored.refunds] == [("WIPES-72", 1)]
    # Refunding every line is a full refund.
    everything = payload("refund_create")
    everything["id"] = 509562969123456790
    everything["refund_line_items"] = [
        {"quantity": line["quantity"], "line_item": line} for line in order["line_items"]
    ]
    response = await post_shopify(client, "refunds/create", everything, event_id="refund-2")
    assert response.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        assert (await session.execute(select(Order.status))).scalar_one() == "refunded"


async def test_the_mail_shows_the_number_the_customer_knows(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await post_shopify(client, "orders/create", payload("order_create"))
    dispatcher = make_dispatcher(runtime, "worker-shopify")
    try:
        await dispatcher.run_once()
    finally:
        await dispatcher.sender.close()
    (mail,) = smtp_sink.received
    subject, text = str(mail.message["Subject"]), mail.part("text/plain")
    assert "№1042" in subject and "№1042" in text
    assert "820982911946154508" not in subject + text


async def test_delivery_marks_the_order_fulfilled(client: AsyncClient, runtime: Runtime) -> None:
    await post_shopify(client, "orders/create", payload("order_create"))
    response = await post_shopify(
        client, "fulfillments/update", payload("fulfillment_update_delivered")
    )
    assert response.json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert order.status == "fulfilled"
    assert order.fulfilled_at == datetime(2026, 11, 23, 11, 2, 11, tzinfo=UTC)
    assert order.delivered_at == datetime(2026, 11, 23, 11, 2, 11, tzinfo=UTC)


async def test_customer_update_and_redact(client: AsyncClient, runtime: Runtime) -> None:
    await post_shopify(client, "orders/create", payload("order_create"))
    updated = await post_shopify(client, "customers/update", payload("customer_update"))
    assert updated.json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (customer.last_name, customer.marketing_consent) == ("Петрова", False)
    assert customer.tags == ["newsletter", "mama-club", "vip"]
    redacted = await post_shopify(client, "customers/redact", payload("customers_redact"))
    assert redacted.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.email is None and customer.first_name is None and customer.deleted_at


async def test_gdpr_requests_are_recorded_and_shop_redact_erases_the_shop(
    client: AsyncClient, runtime: Runtime
) -> None:
    await post_shopify(client, "orders/create", payload("order_create"))
    request = payload("customers_data_request")
    first = await post_shopify(client, "customers/data_request", request, event_id="gdpr-1")
    again = await post_shopify(client, "customers/data_request", request, event_id="gdpr-1")
    async with runtime.session_factory() as session:
        kept = (
            await session.execute(
                select(WebhookDelivery.body).where(
                    WebhookDelivery.event_type == "customers/data_request"
                )
            )
        ).scalar_one()
    assert json.loads(kept)["shop_id"] == 954889
    shop = await post_shopify(
        client, "shop/redact", {"shop_id": 954889, "shop_domain": SHOP}, event_id="gdpr-2"
    )
    assert [r.json()["status"] for r in (first, again, shop)] == [
        "accepted",
        "duplicate",
        "accepted",
    ]
    assert shop.json()["messages_cancelled"] == 1  # the order's waiting thank-you
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.id))
        ).scalars()
        recorded = [(row.event_type, row.body) for row in rows]
        customer = (await session.execute(select(Customer))).scalar_one()
    # Every raw body of the shop is emptied, the GDPR requests' own included.
    assert [topic for topic, _ in recorded] == [
        "orders/create",
        "customers/data_request",
        "shop/redact",
    ]
    assert all(body == "" for _, body in recorded)
    assert customer.email is None and customer.deleted_at is not None


async def test_redact_erases_the_customer_and_their_guest_checkouts(
    client: AsyncClient, runtime: Runtime
) -> None:
    guest = payload("order_create_guest")
    await post_shopify(client, "orders/create", guest)
    request = payload("customers_redact")
    request["customer"]["email"] = "hanako.yamada@example.jp"
    response = await post_shopify(client, "customers/redact", request)
    assert response.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    # Erased: the guest id (a digest of the address) is replaced too.
    assert customer.external_id.startswith("erased:")
    assert (customer.email, customer.first_name, customer.deleted_at is not None) == (
        None,
        None,
        True,
    )
