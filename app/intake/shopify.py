"""Shopify: `POST /webhooks/shopify`, its signature and secrets, and its payloads -> our events.

Shopify sends the REST resource of the topic: the order for `orders/*`, the fulfillment for
`fulfillments/*`, the refund for `refunds/create`, the customer for `customers/*`. The
mappers are pure: a payload in, our events out. The route verifies the shop's signature,
stores the delivery raw and ingests it (`webhooks.take`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Header, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import RuntimeDep
from app.config import Settings
from app.customers.service import answer_data_request, erase_shop
from app.db import transaction
from app.events import (
    CustomerDeleted,
    CustomerUpdated,
    Envelope,
    IntakeResult,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.intake import products, service
from app.intake.payloads import (
    build,
    code_list,
    guest_customer_id,
    obj,
    tag_list,
    text,
    without_none,
)
from app.intake.platform import MapContext, Mapper, Platform
from app.intake.webhooks import (
    JSON_BODY,
    PLATFORM_RESPONSES,
    Answer,
    delivery_id,
    read_limited_body,
    take,
    verify_base64,
)
from app.orders import repository
from app.runtime import Runtime
from app.shops import normalize_host, secrets_for_host

log = logging.getLogger(__name__)

SOURCE = "shopify"
PATH = "/webhooks/shopify"
# GDPR requests we must answer 200 and keep; `shop/redact` also erases the shop's data.
RECORD_ONLY_TOPICS = frozenset({"customers/data_request", "shop/redact"})
# What the catalog will take (`Platform.products`); until then answered as not handled.
PRODUCT_TOPICS = frozenset({"products/create", "products/update", "products/delete"})

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NAME_LENGTH = 200

router = APIRouter(tags=["webhooks"])


def _secrets(settings: Settings) -> list[str]:
    return settings.shopify_secrets


@router.post(
    PATH,
    response_model=Answer,
    summary="Receive a Shopify webhook (orders, fulfillments, refunds, customers, GDPR)",
    responses=PLATFORM_RESPONSES,
    openapi_extra=JSON_BODY,
)
async def receive_shopify_webhook(
    request: Request,
    runtime: RuntimeDep,
    x_shopify_topic: Annotated[str | None, Header()] = None,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_shop_domain: Annotated[str | None, Header()] = None,
    x_shopify_event_id: Annotated[str | None, Header()] = None,
    x_shopify_webhook_id: Annotated[str | None, Header()] = None,
    x_shopify_triggered_at: Annotated[str | None, Header()] = None,
) -> Answer:
    body = await read_limited_body(request)
    shop = normalize_host(x_shopify_shop_domain)
    if shop is None:
        # Secrets are chosen by shop, so without one nothing can be verified.
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-Shopify-Shop-Domain")
    verify_base64(secrets_for_host(_secrets(runtime.settings), shop), x_shopify_hmac_sha256, body)
    topic = (x_shopify_topic or "").strip()
    # The event id is shared by every delivery of one event; the webhook id by its retries.
    delivery = service.Delivery(
        source=SOURCE,
        shop=shop,
        delivery_id=delivery_id(x_shopify_event_id, x_shopify_webhook_id, body=body),
        topic=topic,
        body=body,
    )
    if topic in RECORD_ONLY_TOPICS:
        log.info(
            "shopify %s from %s (delivery %s): recorded only", topic, shop, delivery.delivery_id
        )
        async with transaction(runtime.session_factory) as session:
            return await _record_only(session, runtime, delivery=delivery)
    return await take(
        runtime,
        platform=PLATFORM,
        delivery=delivery,
        received_at=triggered_at(x_shopify_triggered_at, runtime.clock.now()),
    )


async def _record_only(
    session: AsyncSession, runtime: Runtime, *, delivery: service.Delivery
) -> IntakeResult:
    """Keep the delivery (once); `shop/redact` also erases the shop's data; a
    `customers/data_request` gets its export made now, listed at /api/v1/privacy/requests."""
    body = delivery.body
    stored = await repository.record_delivery(
        session,
        source=SOURCE,
        shop=delivery.shop,
        delivery_id=delivery.delivery_id,
        event_type=delivery.topic,
        body=body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body,
        received_at=runtime.clock.now(),
    )
    if stored is None:
        return IntakeResult(status="duplicate", event_id=delivery.delivery_id)
    result = IntakeResult(status="accepted", event_id=delivery.delivery_id)
    if delivery.topic == "shop/redact":
        # The shop uninstalled us 48 hours ago: erase every customer and raw body it sent.
        result.messages_cancelled = await erase_shop(
            session, shop=delivery.shop, now=runtime.clock.now()
        )
    elif delivery.topic == "customers/data_request":
        customer = obj(obj(_json(body)).get("customer"))
        email = customer.get("email")
        await answer_data_request(
            session,
            platform=SOURCE,
            shop=delivery.shop,
            customer_ref=text(customer.get("id")),
            email=email.strip() if isinstance(email, str) and "@" in email else None,
            now=runtime.clock.now(),
        )
    return result


def _json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None  # kept and answered 200 all the same: Shopify asks once


def triggered_at(header: str | None, fallback: datetime) -> datetime:
    """`X-Shopify-Triggered-At` when it is a timezone-aware ISO time, else `fallback`."""
    return _time(header) or fallback


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _order_created(order: dict[str, Any], ctx: MapContext) -> Envelope | None:
    customer = _customer(obj(order.get("customer")), order=order)
    if customer is None:
        return None  # no address to write to (a phone-only or POS order)
    return build(
        OrderPlaced,
        {
            "id": ctx.event_id,
            "type": "order.created",
            "occurred_at": order.get("created_at") or ctx.received_at,
            "order": {
                "id": order["id"],
                # "#1042": what the customer knows it by (stored without the "#").
                "number": text(order.get("name")) or text(order.get("order_number")),
                "created_at": order.get("created_at"),
                "currency": order.get("currency"),
                "total": order.get("total_price"),
                "email": _order_email(order),
                "items": [_item(obj(line)) for line in order.get("line_items") or []],
                "discount_codes": code_list(order.get("discount_codes")),
                "attributes": _name_values(order.get("note_attributes")),
            },
            "customer": customer,
        },
    )


def _order_fulfilled(order: dict[str, Any], ctx: MapContext) -> Envelope:
    fulfilled = [
        moment
        for fulfillment in order.get("fulfillments") or []
        if (moment := _time(obj(fulfillment).get("created_at"))) is not None
    ]
    return build(
        OrderFulfilled,
        without_none(
            {
                "id": ctx.event_id,
                "type": "order.fulfilled",
                # The last fulfilment completes the order.
                "occurred_at": max(fulfilled, default=None)
                or order.get("updated_at")
                or ctx.received_at,
                "order": {"id": order["id"]},
                "customer": _customer(obj(order.get("customer")), order=order),
            }
        ),
    )


def _fulfillment_changed(fulfillment: dict[str, Any], ctx: MapContext) -> Envelope | None:
    """`fulfillments/create|update`: the carrier's `shipment_status: delivered` is our
    `order.delivered`; other statuses (in transit, out for delivery, ...) are not moments our
    rules wait for. (The fulfilment itself comes as `orders/fulfilled`.)"""
    if fulfillment.get("shipment_status") != "delivered":
        return None
    return build(
        OrderFulfilled,
        {
            "id": ctx.event_id,
            "type": "order.delivered",
            "occurred_at": fulfillment.get("updated_at") or ctx.received_at,
            "order": {"id": fulfillment["order_id"]},
        },
    )


def _order_cancelled(order: dict[str, Any], ctx: MapContext) -> Envelope:
    return build(
        OrderClosed,
        {
            "id": ctx.event_id,
            "type": "order.cancelled",
            "occurred_at": order.get("cancelled_at") or order.get("updated_at") or ctx.received_at,
            "order": {"id": order["id"]},
        },
    )


def _refund_created(refund: dict[str, Any], ctx: MapContext) -> Envelope | None:
    # A refund names the lines it gives money back for; only messages about those lines are
    # cancelled (all of them once nothing of the order is left). A refund without lines
    # (shipping, a goodwill amount) takes nothing back, so it changes nothing for us.
    order_id = refund["order_id"]  # a refund that names no order is unreadable, not empty
    items = []
    for line in refund.get("refund_line_items") or []:
        line = obj(line)
        sku = text(obj(line.get("line_item")).get("sku"))
        if sku:
            items.append({"sku": sku, "quantity": line.get("quantity") or 1})
    if not items:
        return None
    return build(
        OrderClosed,
        {
            "id": ctx.event_id,
            "type": "order.refunded",
            "occurred_at": refund.get("processed_at")
            or refund.get("created_at")
            or ctx.received_at,
            "order": {"id": order_id},
            "items": items,
        },
    )


def _customer_updated(customer: dict[str, Any], ctx: MapContext) -> Envelope | None:
    fields = _customer(customer)
    if fields is None:
        return None  # a customer without an email address: nothing we can send them
    return build(
        CustomerUpdated,
        {
            "id": ctx.event_id,
            "type": "customer.updated",
            "occurred_at": customer.get("updated_at") or ctx.received_at,
            "customer": fields,
        },
    )


def _customer_redacted(request: dict[str, Any], ctx: MapContext) -> Envelope:
    return build(
        CustomerDeleted,
        {
            "id": ctx.event_id,
            "type": "customer.deleted",
            "occurred_at": ctx.received_at,
            "customer": {
                "id": obj(request.get("customer"))["id"],
                # Guest checkouts of this address are erased too (they have no customer id).
                "email": text(obj(request.get("customer")).get("email")),
            },
        },
    )


_MAPPERS: dict[str, Mapper] = {
    "orders/create": _order_created,
    "orders/fulfilled": _order_fulfilled,
    "fulfillments/create": _fulfillment_changed,
    "fulfillments/update": _fulfillment_changed,
    "orders/cancelled": _order_cancelled,
    "refunds/create": _refund_created,
    "customers/create": _customer_updated,
    "customers/update": _customer_updated,
    "customers/redact": _customer_redacted,
}
PLATFORM = Platform(
    source=SOURCE,
    path=PATH,
    router=router,
    secret_settings=("AFTERSALE_SHOPIFY_SECRETS", "AFTERSALE_SHOPIFY_SECRET"),
    secrets=_secrets,
    mappers=_MAPPERS,
    record_only=RECORD_ONLY_TOPICS,
    products=products.SHOPIFY,
)
TOPICS = PLATFORM.topics


def _order_email(order: dict[str, Any]) -> str | None:
    return text(order.get("email")) or text(order.get("contact_email"))


def _customer(
    customer: dict[str, Any], *, order: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """CustomerIn fields from a customer object, completed from its order when there is one.

    A guest checkout has no customer object: the order's email and addresses stand in, and
    the id is derived from the email so the same guest is one customer across orders.
    """
    order = order or {}
    email = text(customer.get("email")) or _order_email(order)
    if email is None:
        return None
    address = (
        obj(customer.get("default_address"))
        or obj(order.get("billing_address"))
        or obj(order.get("shipping_address"))
    )
    country = text(address.get("country_code"))
    locale = text(customer.get("locale")) or text(order.get("customer_locale"))
    return without_none(
        {
            "id": text(customer.get("id")) or guest_customer_id(email),
            "email": email,
            "first_name": _name(customer.get("first_name")) or _name(address.get("first_name")),
            "last_name": _name(customer.get("last_name")) or _name(address.get("last_name")),
            "locale": locale if locale and len(locale) <= 35 and _LOCALE.match(locale) else None,
            "time_zone": _time_zone(customer.get("time_zone")),
            "country": country.upper() if country and _COUNTRY.match(country.upper()) else None,
            "tags": tag_list(customer.get("tags")) or None,
            "marketing_consent": _consent(customer, order),
        }
    )


def _consent(customer: dict[str, Any], order: dict[str, Any]) -> bool:
    """Email marketing consent: `email_marketing_consent` (API 2022-04 on), then the older
    `accepts_marketing`, then the order's `buyer_accepts_marketing` (all a guest checkout has)."""
    state = obj(customer.get("email_marketing_consent")).get("state")
    if state is not None:
        return str(state) == "subscribed"  # not "pending": a double opt-in not yet confirmed
    if "accepts_marketing" in customer:
        return customer["accepts_marketing"] is True
    return order.get("buyer_accepts_marketing") is True


def _name_values(entries: Any) -> dict[str, Any]:
    """Shopify's `[{"name": ..., "value": ...}]` (note_attributes, line-item properties) as a
    dict; names starting with "_" are the shop's private ones, not for the customer."""
    found: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else []:
        name, value = obj(entry).get("name"), obj(entry).get("value")
        shown = isinstance(name, str) and name.strip() and not name.startswith("_")
        if shown and isinstance(value, str | int | float) and not isinstance(value, bool):
            found[str(name).strip()] = value
    return found


def _item(line: dict[str, Any]) -> dict[str, Any]:
    # The line's properties (an engraving, a gift note), then what the platform says of it.
    attributes = _name_values(line.get("properties")) | without_none(
        {
            "vendor": text(line.get("vendor")),
            "product_id": text(line.get("product_id")),
            "variant_id": text(line.get("variant_id")),
            "variant_title": text(line.get("variant_title")),
        }
    )
    return without_none(
        {
            "sku": text(line.get("sku")),
            "name": text(line.get("name")) or text(line.get("title")),
            "category": _category(line.get("product_type")),
            "tags": tag_list(line.get("tags")) or None,
            "quantity": line.get("quantity"),
            "unit_price": line.get("price"),
            "attributes": attributes,
            # Null for a custom item (no product behind it) or a deleted product.
            "product_id": text(line.get("product_id")),
            "variant_id": text(line.get("variant_id")),
        }
    )


def _category(product_type: Any) -> str | None:
    """`Baby / Diapers` -> `baby/diapers`: our rules match categories by prefix like that."""
    value = text(product_type)
    if value is None:
        return None
    parts = ["-".join(part.lower().split()) for part in value.split("/")]
    return "/".join(part for part in parts if part) or None


def _name(value: Any) -> str | None:
    name = text(value)
    return name[:_NAME_LENGTH] if name else None


def _time_zone(value: Any) -> str | None:
    zone = text(value)
    if zone is None:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown zone must not lose the order: the default zone applies
    return zone
