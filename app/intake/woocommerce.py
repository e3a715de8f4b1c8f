"""WooCommerce: `POST /webhooks/woocommerce`, its signature and secrets, and its payloads ->
our events.

WooCommerce sends the REST API (v3) resource of the topic, and for `*.deleted` only `{"id": N}`.
Its times come in the site's zone and as `*_gmt` without an offset; we read the `*_gmt` ones.
The mappers are pure: a payload in, our events out.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, Request

from app.api.deps import RuntimeDep
from app.config import Settings
from app.events import (
    CustomerDeleted,
    CustomerUpdated,
    Envelope,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.intake import products, service
from app.intake.aftersale import DEFAULT_SHOP
from app.intake.payloads import (
    build,
    code_list,
    guest_customer_id,
    obj,
    text,
    without_none,
)
from app.intake.platform import MapContext, Mapper, Platform
from app.intake.webhooks import (
    JSON_BODY,
    PLATFORM_RESPONSES,
    Answer,
    DeliveryIgnored,
    delivery_id,
    read_limited_body,
    take,
    verify_base64,
)
from app.shops import normalize_host, secrets_for_host

log = logging.getLogger(__name__)

SOURCE = "woocommerce"
PATH = "/webhooks/woocommerce"
# What the catalog will take (`Platform.products`); until then answered as not handled.
PRODUCT_TOPICS = frozenset(
    {"product.created", "product.updated", "product.deleted", "product.restored"}
)
# The test delivery WooCommerce posts when a webhook is saved: a form body, no topic, unsigned.
_PING = re.compile(rb"^webhook_id=\d+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_YES = frozenset({"yes", "1", "true"})
# Paid: the order counts as placed (and `on-hold` too when the shop says so).
_PAID = frozenset({"processing", "completed"})
# Never paid, cancelled or refunded: what waits for the order is cancelled.
_CLOSED_STATUSES = {
    "failed": "order.cancelled",
    "cancelled": "order.cancelled",
    "refunded": "order.refunded",
}
_PRICE_STEP = Decimal("0.0001")  # the 4 decimal places ItemIn.unit_price keeps

router = APIRouter(tags=["webhooks"])


def _secrets(settings: Settings) -> list[str]:
    return settings.woocommerce_secrets


@router.post(
    PATH,
    response_model=Answer,
    summary="Receive a WooCommerce webhook (orders, customers; the ping of a new webhook)",
    responses=PLATFORM_RESPONSES,
    openapi_extra=JSON_BODY,
)
async def receive_woocommerce_webhook(
    request: Request,
    runtime: RuntimeDep,
    x_wc_webhook_topic: Annotated[str | None, Header()] = None,
    x_wc_webhook_signature: Annotated[str | None, Header()] = None,
    x_wc_webhook_source: Annotated[str | None, Header()] = None,
    x_wc_webhook_delivery_id: Annotated[str | None, Header()] = None,
) -> Answer:
    body = await read_limited_body(request)
    if is_ping(x_wc_webhook_topic, body):
        # WooCommerce refuses to save a webhook unless its unsigned ping gets a 200.
        log.info("woocommerce webhook ping answered")
        return DeliveryIgnored(status="ignored", reason="ping")
    host = source_host(x_wc_webhook_source)
    verify_base64(secrets_for_host(_secrets(runtime.settings), host), x_wc_webhook_signature, body)
    delivery = service.Delivery(
        source=SOURCE,
        shop=host or DEFAULT_SHOP,
        delivery_id=delivery_id(x_wc_webhook_delivery_id, body=body),
        topic=(x_wc_webhook_topic or "").strip(),
        body=body,
    )
    return await take(
        runtime, platform=PLATFORM, delivery=delivery, received_at=runtime.clock.now()
    )


def is_ping(topic_header: str | None, body: bytes) -> bool:
    return not topic_header and _PING.match(body.strip()) is not None


def source_host(header: str | None) -> str | None:
    """The host of `X-WC-Webhook-Source` (the site URL, e.g. `https://shop.example/`)."""
    try:
        return normalize_host(urlsplit((header or "").strip()).hostname)
    except ValueError:
        return None


def _order_changed(order: dict[str, Any], ctx: MapContext) -> list[Envelope]:
    """`order.created` and `order.updated`: what the order's status says now.

    An order counts as placed once paid (`processing`, `completed`, and `on-hold` when the
    shop says so: WOOCOMMERCE_ON_HOLD_IS_PAID); a `pending` or unpaid `on-hold` one plans
    nothing yet. `failed`, `cancelled` and `refunded` close it, cancelling what waits. Every
    update of a paid order maps to its placement again, which changes nothing once stored.
    """
    status = str(order.get("status"))
    closed = _CLOSED_STATUSES.get(status)
    if closed is not None:
        changed = _gmt(order.get("date_modified_gmt")) or ctx.received_at
        return [
            build(
                OrderClosed,
                {
                    "id": ctx.event_id,
                    "type": closed,
                    "occurred_at": changed,
                    "order": {"id": order["id"]},
                },
            )
        ]
    paid = status in _PAID or (status == "on-hold" and ctx.settings.woocommerce_on_hold_is_paid)
    customer = _order_customer(order, ctx.settings.woocommerce_consent_meta_key)
    if not paid or customer is None:
        return []  # not paid yet, or no billing email: nothing we can send
    # Placed when paid; an on-hold order (a bank transfer) has no payment time yet.
    placed = (
        _gmt(order.get("date_paid_gmt")) or _gmt(order.get("date_created_gmt")) or ctx.received_at
    )
    events: list[Envelope] = [
        build(
            OrderPlaced,
            {
                "id": ctx.event_id,
                "type": "order.created",
                "occurred_at": placed,
                "order": without_none(
                    {
                        "id": order["id"],
                        "number": text(order.get("number")),
                        "created_at": placed,
                        "currency": order.get("currency"),
                        "total": order.get("total"),
                        "email": customer["email"],
                        "items": [_item(obj(line)) for line in order.get("line_items") or []],
                        "discount_codes": code_list(order.get("coupon_lines")),
                    }
                ),
                "customer": customer,
            },
        )
    ]
    if status == "completed":
        completed = (
            _gmt(order.get("date_completed_gmt"))
            or _gmt(order.get("date_modified_gmt"))
            or ctx.received_at
        )
        events.append(
            build(
                OrderFulfilled,
                {
                    "id": ctx.event_id,
                    "type": "order.fulfilled",
                    "occurred_at": completed,
                    "order": {"id": order["id"]},
                    "customer": customer,
                },
            )
        )
    return events


def _order_deleted(order: dict[str, Any], ctx: MapContext) -> Envelope:
    # Moved to the trash (or deleted): for our messages the same as cancelled.
    return build(
        OrderClosed,
        {
            "id": ctx.event_id,
            "type": "order.cancelled",
            "occurred_at": ctx.received_at,
            "order": {"id": order["id"]},
        },
    )


def _customer_updated(customer: dict[str, Any], ctx: MapContext) -> Envelope | None:
    billing = obj(customer.get("billing"))
    email = text(customer.get("email")) or text(billing.get("email"))
    if email is None:
        return None
    fields = without_none(
        {
            "id": text(customer.get("id")),
            "email": email,
            "first_name": text(customer.get("first_name")) or text(billing.get("first_name")),
            "last_name": text(customer.get("last_name")) or text(billing.get("last_name")),
            "country": _country(billing, obj(customer.get("shipping"))),
            # Left unset without an entry: consent is given with orders, not on accounts.
            "marketing_consent": _consent(
                customer.get("meta_data"), ctx.settings.woocommerce_consent_meta_key
            ),
        }
    )
    return build(
        CustomerUpdated,
        {
            "id": ctx.event_id,
            "type": "customer.updated",
            "occurred_at": _gmt(customer.get("date_modified_gmt")) or ctx.received_at,
            "customer": fields,
        },
    )


def _customer_deleted(customer: dict[str, Any], ctx: MapContext) -> Envelope:
    return build(
        CustomerDeleted,
        {
            "id": ctx.event_id,
            "type": "customer.deleted",
            "occurred_at": ctx.received_at,
            "customer": {"id": customer["id"]},
        },
    )


_MAPPERS: dict[str, Mapper] = {
    "order.created": _order_changed,
    "order.updated": _order_changed,
    "order.deleted": _order_deleted,
    "customer.created": _customer_updated,
    "customer.updated": _customer_updated,
    "customer.deleted": _customer_deleted,
}
PLATFORM = Platform(
    source=SOURCE,
    path=PATH,
    router=router,
    secret_settings=("AFTERSALE_WOOCOMMERCE_SECRETS", "AFTERSALE_WOOCOMMERCE_SECRET"),
    secrets=_secrets,
    mappers=_MAPPERS,
    products=products.WOOCOMMERCE,
)
TOPICS = PLATFORM.topics


def _order_customer(order: dict[str, Any], consent_meta_key: str) -> dict[str, Any] | None:
    """CustomerIn fields from an order's billing details; a guest (customer_id 0) gets an id
    derived from the email, so the same guest is one customer across orders."""
    billing = obj(order.get("billing"))
    email = text(billing.get("email"))
    if email is None:
        return None
    account = text(order.get("customer_id"))
    return without_none(
        {
            "id": account if account and account != "0" else guest_customer_id(email),
            "email": email,
            "first_name": text(billing.get("first_name")),
            "last_name": text(billing.get("last_name")),
            "country": _country(billing, obj(order.get("shipping"))),
            "marketing_consent": bool(_consent(order.get("meta_data"), consent_meta_key)),
        }
    )


def _consent(meta_data: Any, key: str) -> bool | None:
    """The meta entry `key` as consent (yes/1/true, any case); None when there is no entry."""
    for entry in meta_data if isinstance(meta_data, list) else []:
        if isinstance(entry, dict) and entry.get("key") == key:
            return str(entry.get("value")).strip().lower() in _YES
    return None


def _item(line: dict[str, Any]) -> dict[str, Any]:
    attributes = {
        # Variation attributes (`pa_size: m`) and other visible line meta; `_`-keys are private.
        str(entry["key"]): entry.get("value")
        for entry in line.get("meta_data") or []
        if isinstance(entry, dict)
        and isinstance(entry.get("key"), str)
        and not entry["key"].startswith("_")
        and isinstance(entry.get("value"), str | int)
    }
    attributes.update(
        without_none(
            {
                "product_id": text(line.get("product_id")),
                "variation_id": text(line.get("variation_id"))
                if line.get("variation_id")
                else None,
            }
        )
    )
    return without_none(
        {
            "sku": text(line.get("sku")),
            "name": text(line.get("name")),
            "quantity": line.get("quantity"),
            "unit_price": _unit_price(line),
            "attributes": attributes,
            # 0 means none: a simple product's line has no variation, a deleted one no product.
            "product_id": _ref(line.get("product_id")),
            "variant_id": _ref(line.get("variation_id")),
        }
    )


def _ref(value: Any) -> str | None:
    """A WooCommerce id as text; 0 (or "0") is WooCommerce's "none"."""
    ref = text(value)
    return None if ref in (None, "0") else ref


def _unit_price(line: dict[str, Any]) -> Decimal | None:
    """Before discounts: `subtotal` / quantity. (`price` is after discounts, and a float.)"""
    quantity = line.get("quantity")
    subtotal = line.get("subtotal")
    if not isinstance(quantity, int) or quantity < 1 or subtotal in (None, ""):
        return None
    return (Decimal(str(subtotal)) / quantity).quantize(_PRICE_STEP, rounding=ROUND_HALF_UP)


def _country(*addresses: dict[str, Any]) -> str | None:
    for address in addresses:
        country = (text(address.get("country")) or "").upper()
        if _COUNTRY.match(country):
            return country
    return None


def _gmt(value: Any) -> datetime | None:
    """A `*_gmt` time: ISO without an offset, in UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
