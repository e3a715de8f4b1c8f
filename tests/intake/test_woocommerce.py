"""WooCommerce intake: the pure mapping of its payloads, and POST /webhooks/woocommerce signed
as WooCommerce signs, through the ASGI app into the database."""

from __future__ import annotations

import json
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
from app.intake import woocommerce
from app.intake.payloads import PayloadError, guest_customer_id
from app.intake.signature import sign_body_base64
from app.models import Customer, IntakeFailure, Message, Order, OrderItem, WebhookDelivery
from app.runtime import Runtime
from tests.intake.mapping import map_event, map_events

PAYLOADS = Path(__file__).parent / "payloads"
SITE = "https://coffee.example.ru/"
HOST = "coffee.example.ru"
SECRET = "wc-secret-6f1d0c9b8a7e6d5c4b3a"
OTHER_SITE_SECRET = "wc-secret-for-the-tea-site-0001"
KEY = "aftersale_marketing_consent"
RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / f"woocommerce_{name}.json").read_text())
    return loaded


def to_event(topic: str, body: dict[str, Any], key: str = KEY, **settings: Any) -> Any:
    return map_event(
        woocommerce.PLATFORM,
        topic,
        body,
        event_id="d-1",
        received_at=RECEIVED,
        settings=Settings(
            env="development",
            woocommerce_consent_meta_key=key,
            _env_file=None,  # type: ignore[call-arg]
            **settings,
        ),
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"woocommerce_secrets": [f"{HOST}={SECRET}", f"tea.example.cn={OTHER_SITE_SECRET}"]}
    )


async def post_woo(
    client: AsyncClient,
    topic: str,
    body: dict[str, Any] | bytes,
    *,
    secret: str | None = SECRET,
    source: str | None = SITE,
    delivery_id: str | None = None,
) -> Response:
    """POST as WooCommerce does: wp_json_encode (non-ASCII escaped), base64 HMAC-SHA256."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resource, _, event = topic.partition(".")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7)",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery_id or uuid.uuid4().hex,
    }
    if source is not None:
        headers["X-WC-Webhook-Source"] = source
    if secret is not None:
        headers["X-WC-Webhook-Signature"] = sign_body_base64(secret, raw)
    return await client.post("/webhooks/woocommerce", content=raw, headers=headers)


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def with_status(status: str, *, modified: str = "2026-11-21T08:00:00") -> dict[str, Any]:
    order = payload("order")
    order.update(status=status, date_modified_gmt=modified)
    if status == "completed":
        order["date_completed_gmt"] = "2026-11-21T07:30:00"
    return order


# --- mapping -------------------------------------------------------------------------------


def test_order_maps_ids_money_items_and_customer() -> None:
    event = to_event("order.created", payload("order"))
    assert isinstance(event, OrderPlaced)
    # Placed when paid (`date_paid_gmt`), 4 seconds after it was created.
    assert event.occurred_at == datetime(2026, 11, 20, 9, 59, 4, tzinfo=UTC)
    order, customer = event.order, event.customer
    assert (order.id, order.currency, order.total) == ("4127", "RUB", Decimal("4760.00"))
    assert order.number == "4127"
    assert order.created_at == datetime(2026, 11, 20, 9, 59, 4, tzinfo=UTC)
    # Unit prices before the coupon, from `subtotal` (`price` is after it, and a float).
    assert [(i.sku, i.quantity, i.unit_price) for i in order.items] == [
        ("COFFEE-ETH-1KG", 2, Decimal("1700.0000")),
        ("V60-FILTER-100", 3, Decimal("466.6667")),
    ]
    assert order.items[0].name == "Кофе в зёрнах «Эфиопия Иргачеффе» - 1 кг"
    assert order.items[0].attributes == {
        "pa_weight": "1kg",
        "product_id": "288",
        "variation_id": "291",
    }
    assert order.items[1].attributes == {"product_id": "305"}
    # The line of a simple product says variation_id 0: no variant.
    assert [(i.product_id, i.variant_id) for i in order.items] == [("288", "291"), ("305", None)]
    assert (customer.id, customer.email) == ("17", "maria.smirnova@example.ru")
    assert (customer.first_name, customer.last_name, customer.country) == (
        "Мария",
        "Смирнова",
        "RU",
    )
    assert customer.marketing_consent is True


def paid(order: dict[str, Any]) -> dict[str, Any]:
    """The order once its payment came in (a bank transfer's `on-hold` becomes `processing`)."""
    return order | {"status": "processing", "date_paid_gmt": "2026-11-21T06:12:40"}


def test_guest_order_gets_a_stable_id_and_no_consent_by_default() -> None:
    event = to_event("order.created", paid(payload("order_guest")))
    assert isinstance(event, OrderPlaced)
    customer = event.customer
    assert customer.id == guest_customer_id("xiaoming.wang@example.cn")
    assert (customer.first_name, customer.last_name, customer.country) == ("小明", "王", "CN")
    assert customer.marketing_consent is False


@pytest.mark.parametrize(
    ("value", "consent"),
    [
        ("yes", True),
        ("1", True),
        ("TRUE", True),
        (1, True),
        (True, True),
        ("no", False),
        ("", False),
    ],
)
def test_consent_from_the_configured_meta_key(value: object, consent: bool) -> None:
    order = paid(payload("order_guest"))
    order["meta_data"].append({"id": 9, "key": "newsletter_opt_in", "value": value})
    event = to_event("order.created", order, key="newsletter_opt_in")
    assert isinstance(event, OrderPlaced) and event.customer.marketing_consent is consent
    # The default key is not in this order: no consent.
    default = to_event("order.created", order)
    assert isinstance(default, OrderPlaced) and default.customer.marketing_consent is False


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        ("failed", "order.cancelled"),
        ("cancelled", "order.cancelled"),
        ("refunded", "order.refunded"),
    ],
)
def test_closing_statuses(status: str, event_type: str) -> None:
    for topic in ("order.created", "order.updated"):
        event = to_event(topic, with_status(status))
        assert isinstance(event, OrderClosed) and event.order.id == "4127"
        assert (event.type, event.id) == (event_type, "d-1")
        assert event.occurred_at == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_a_completed_order_is_placed_and_fulfilled() -> None:
    # Perhaps never seen as `processing` (a virtual product completes at once).
    placed, fulfilled = map_events(
        woocommerce.PLATFORM,
        "order.updated",
        with_status("completed"),
        event_id="d-1",
        received_at=RECEIVED,
    )
    assert isinstance(placed, OrderPlaced) and placed.order.number == "4127"
    assert isinstance(fulfilled, OrderFulfilled) and fulfilled.type == "order.fulfilled"
    assert fulfilled.occurred_at == datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    assert fulfilled.customer is not None and fulfilled.customer.id == "17"


@pytest.mark.parametrize("status", ["pending", "on-hold", "checkout-draft", "trash"])
def test_unpaid_statuses_are_nothing_for_us_yet(status: str) -> None:
    for topic in ("order.created", "order.updated"):
        assert to_event(topic, with_status(status) | {"date_paid_gmt": None}) is None


def test_on_hold_counts_as_paid_when_the_shop_says_so() -> None:
    order = payload("order_guest")  # a bank transfer: on-hold, not paid yet
    assert order["status"] == "on-hold" and order["date_paid_gmt"] is None
    assert to_event("order.created", order) is None
    event = to_event("order.created", order, woocommerce_on_hold_is_paid=True)
    assert isinstance(event, OrderPlaced)
    # No payment time: placed when created.
    assert event.order.created_at == datetime(2026, 11, 20, 9, 58, tzinfo=UTC)
    assert event.order.number == "4128"


def test_deletions_carry_only_the_id() -> None:
    deleted = to_event("order.deleted", {"id": 4127})
    assert isinstance(deleted, OrderClosed)
    assert (deleted.type, deleted.order.id, deleted.occurred_at) == (
        "order.cancelled",
        "4127",
        RECEIVED,
    )
    gone = to_event("customer.deleted", {"id": 17})
    assert isinstance(gone, CustomerDeleted) and gone.customer.id == "17"


def test_customer_topics() -> None:
    event = to_event("customer.updated", payload("customer"))
    assert isinstance(event, CustomerUpdated)
    assert (event.customer.id, event.customer.last_name) == ("17", "Кузнецова")
    assert event.customer.marketing_consent is True
    assert event.occurred_at == datetime(2026, 11, 24, 7, 5, tzinfo=UTC)
    assert to_event("customer.created", payload("customer")) is not None
    assert to_event("product.updated", payload("customer")) is None
    assert to_event("coupon.created", {"id": 1}) is None


def test_unreadable_payloads_raise_one_error() -> None:
    order = payload("order")
    order["line_items"][0]["quantity"] = 0
    with pytest.raises(PayloadError, match=r"order\.items\.0\.quantity"):
        to_event("order.created", order)
    with pytest.raises(PayloadError, match="missing field 'id'"):
        to_event("order.deleted", {})


def test_ping_and_source_host() -> None:
    assert woocommerce.is_ping(None, b"webhook_id=12")
    assert not woocommerce.is_ping("order.created", b"webhook_id=12")
    assert not woocommerce.is_ping(None, b'{"id": 12}')
    assert woocommerce.source_host("https://Coffee.Example.RU/") == HOST
    assert woocommerce.source_host("http://localhost:8080/shop/") == "localhost"
    assert woocommerce.source_host("not a url") is None
    assert woocommerce.source_host(None) is None


def test_consent_meta_key_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).woocommerce_consent_meta_key == KEY  # type: ignore[call-arg]
    monkeypatch.setenv("AFTERSALE_WOOCOMMERCE_CONSENT_META_KEY", "newsletter_opt_in")
    monkeypatch.setenv("AFTERSALE_WOOCOMMERCE_SECRETS", f"{HOST}={SECRET}")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.woocommerce_consent_meta_key == "newsletter_opt_in"
    assert settings.woocommerce_secrets == [f"{HOST}={SECRET}"]


# --- through the app -----------------------------------------------------------------------


async def test_ping_answers_200_and_stores_nothing(client: AsyncClient, runtime: Runtime) -> None:
    response = await client.post(
        "/webhooks/woocommerce",
        content=b"webhook_id=12",
        headers={"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7)"},
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "reason": "ping"}
    assert await count(runtime, WebhookDelivery) == 0


async def test_order_is_stored_and_thank_you_planned(client: AsyncClient, runtime: Runtime) -> None:
    response = await post_woo(client, "order.created", payload("order"))
    assert response.status_code == 200, response.text
    assert response.json()["messages_planned"] == 1
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
        delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
        message = (await session.execute(select(Message))).scalar_one()
    assert (order.shop, order.external_id, order.total) == (HOST, "4127", Decimal("4760.00"))
    assert (customer.first_name, customer.marketing_consent) == ("Мария", True)
    assert (delivery.source, delivery.shop) == ("woocommerce", HOST)
    assert (message.rule_id, message.status) == ("thank-you", "scheduled")
    async with runtime.session_factory() as session:
        items = (await session.execute(select(OrderItem).order_by(OrderItem.position))).scalars()
        assert [(i.sku, i.product_ref, i.variant_ref) for i in items] == [
            ("COFFEE-ETH-1KG", "288", "291"),
            ("V60-FILTER-100", "305", None),
        ]


async def test_guest_order_without_consent(client: AsyncClient, runtime: Runtime) -> None:
    response = await post_woo(client, "order.created", paid(payload("order_guest")))
    assert response.json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.external_id == guest_customer_id("xiaoming.wang@example.cn")
    assert (customer.first_name, customer.marketing_consent) == ("小明", False)


async def test_configured_consent_key_is_used(client: AsyncClient, runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(
        update={"woocommerce_consent_meta_key": "newsletter_opt_in"}
    )
    order = paid(payload("order_guest"))
    order["meta_data"].append({"id": 9, "key": "newsletter_opt_in", "value": "yes"})
    await post_woo(client, "order.created", order)
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.marketing_consent is True


async def test_bad_or_missing_signature_is_refused(client: AsyncClient, runtime: Runtime) -> None:
    order = payload("order")
    assert (await post_woo(client, "order.created", order, secret="wrong")).status_code == 401
    assert (await post_woo(client, "order.created", order, secret=None)).status_code == 401
    # Another site's secret does not sign for this one.
    other = await post_woo(client, "order.created", order, secret=OTHER_SITE_SECRET)
    assert other.status_code == 401
    # Without a source, only secrets for every site apply, and none is configured here.
    assert (await post_woo(client, "order.created", order, source=None)).status_code == 401
    assert await count(runtime, WebhookDelivery) == 0


async def test_a_secret_for_every_site_and_the_default_shop(
    client: AsyncClient, runtime: Runtime
) -> None:
    every = "wc-secret-every-site-0123456789"
    runtime.settings = runtime.settings.model_copy(update={"woocommerce_secrets": [every]})
    response = await post_woo(client, "order.created", payload("order"), secret=every, source=None)
    assert response.status_code == 200, response.text
    async with runtime.session_factory() as session:
        assert (await session.execute(select(Order.shop))).scalar_one() == "default"


async def test_repeated_delivery_has_one_effect(client: AsyncClient, runtime: Runtime) -> None:
    order = payload("order")
    first = await post_woo(client, "order.created", order, delivery_id="a1b2c3")
    second = await post_woo(client, "order.created", order, delivery_id="a1b2c3")
    assert (first.json()["status"], second.json()["status"]) == ("accepted", "duplicate")
    assert await count(runtime, Message) == 1
    assert await count(runtime, OrderItem) == 2


async def test_status_changes_through_the_app(client: AsyncClient, runtime: Runtime) -> None:
    await post_woo(client, "order.created", payload("order"))
    # Any update of a paid order is its placement again: stored once, planned once.
    processing = await post_woo(client, "order.updated", with_status("processing"))
    assert processing.json()["status"] == "accepted"
    assert processing.json()["messages_planned"] == 0
    completed = await post_woo(client, "order.updated", with_status("completed"))
    assert completed.json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert order.status == "fulfilled"
    assert order.fulfilled_at == datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
    refunded = await post_woo(client, "order.updated", with_status("refunded"))
    assert refunded.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        message = (await session.execute(select(Message))).scalar_one()
    assert order.status == "refunded"
    assert (message.status, message.status_reason) == ("cancelled", "order_refunded")


async def test_cancellation_cancels_pending_messages(client: AsyncClient, runtime: Runtime) -> None:
    await post_woo(client, "order.created", payload("order"))
    response = await post_woo(client, "order.updated", with_status("cancelled"))
    assert response.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
    assert (message.status, message.status_reason) == ("cancelled", "order_cancelled")


async def test_trashed_order_is_cancelled(client: AsyncClient, runtime: Runtime) -> None:
    await post_woo(client, "order.created", paid(payload("order_guest")))
    response = await post_woo(client, "order.deleted", {"id": 4128})
    assert response.json()["messages_cancelled"] == 1


async def test_customer_update_and_delete(client: AsyncClient, runtime: Runtime) -> None:
    await post_woo(client, "order.created", payload("order"))
    updated = await post_woo(client, "customer.updated", payload("customer"))
    assert updated.json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.last_name == "Кузнецова"
    deleted = await post_woo(client, "customer.deleted", {"id": 17})
    assert deleted.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.email is None and customer.deleted_at is not None


async def test_unknown_topic_and_unreadable_body_answer_200(
    client: AsyncClient, runtime: Runtime
) -> None:
    coupon = await post_woo(client, "coupon.updated", {"id": 720, "code": "kaffee10"})
    assert coupon.json() == {
        "status": "ignored",
        "reason": "topic 'coupon.updated' is not handled",
    }
    broken = await post_woo(client, "order.created", b"[1, 2, 3]")
    assert (broken.status_code, broken.json()["status"]) == (200, "unmapped")
    # Both stored raw; the unreadable one is kept as an intake failure to replay.
    assert await count(runtime, WebhookDelivery) == 2
    assert await count(runtime, IntakeFailure) == 1
    assert await count(runtime, Order) == 0


# --- paid or not (issue 14: a pending order that fails got a thank-you) -----------------


def unpaid(status: str = "pending") -> dict[str, Any]:
    """The order as WooCommerce sends it before payment: no payment time."""
    return payload("order") | {"status": status, "date_paid_gmt": None, "set_paid": False}


async def test_a_pending_order_that_fails_is_never_mailed(
    client: AsyncClient, runtime: Runtime
) -> None:
    created = await post_woo(client, "order.created", unpaid())
    assert created.json() == {"status": "ignored", "reason": "nothing to do for this order.created"}
    assert await count(runtime, Order) == 0
    failed = await post_woo(client, "order.updated", unpaid("failed"))
    assert failed.json()["status"] == "accepted"
    assert failed.json()["messages_planned"] == 0
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert (order.external_id, order.status, order.placed_at) == ("4127", "cancelled", None)
    assert await count(runtime, Message) == 0


async def test_a_pending_order_is_planned_once_paid_and_a_failure_then_cancels(
    client: AsyncClient, runtime: Runtime
) -> None:
    await post_woo(client, "order.created", unpaid())
    paid_now = await post_woo(client, "order.updated", payload("order"))
    assert paid_now.json()["messages_planned"] >= 1
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert (order.number, order.placed_at) == ("4127", datetime(2026, 11, 20, 9, 59, 4, tzinfo=UTC))
    planned = paid_now.json()["messages_planned"]
    # A later failure (a charge-back, a payment reversed) takes the one path cancellations take.
    failed = await post_woo(client, "order.updated", with_status("failed"))
    assert failed.json()["messages_cancelled"] == planned
    async with runtime.session_factory() as session:
        reasons = set((await session.execute(select(Message.status_reason))).scalars())
    assert reasons == {"order_cancelled"}


async def test_on_hold_orders_wait_for_payment_unless_the_shop_counts_them_paid(
    client: AsyncClient, runtime: Runtime
) -> None:
    guest = payload("order_guest")  # a bank transfer: on-hold
    assert (await post_woo(client, "order.created", guest)).json()["status"] == "ignored"
    runtime.settings = runtime.settings.model_copy(update={"woocommerce_on_hold_is_paid": True})
    again = await post_woo(client, "order.updated", guest)
    assert again.json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
    assert (order.number, order.status) == ("4128", "open")
