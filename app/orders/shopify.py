"""Shopify webhook payloads -> our events. Pure: a topic and its JSON in, an Envelope out.

Shopify sends the REST resource of the topic: the order for `orders/*`, the fulfillment for
`fulfillments/update`, the refund for `refunds/create`, the customer for `customers/*`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.orders.platforms import (
    Mapper,
    build,
    code_list,
    guest_customer_id,
    obj,
    run_mapper,
    tag_list,
    text,
    without_none,
)
from app.orders.schemas import (
    CustomerDeleted,
    CustomerUpdated,
    Envelope,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)

SOURCE = "shopify"
# GDPR requests we must answer 200 and keep; acting on them is a later task.
RECORD_ONLY_TOPICS = frozenset({"customers/data_request", "shop/redact"})

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NAME_LENGTH = 200


def to_event(
    topic: str, payload: dict[str, Any], *, event_id: str, received_at: datetime
) -> Envelope | None:
    """The event for this delivery; None when the topic or its state is nothing for us.

    `received_at` stands in for payloads that carry no time of their own. Raises PayloadError
    when an order or customer cannot be read from the payload.
    """
    mapper = _MAPPERS.get(topic)
    if mapper is None:
        return None
    return run_mapper(mapper, topic, payload, event_id, received_at)


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


def _order_created(order: dict[str, Any], event_id: str, at: datetime) -> Envelope | None:
    customer = _customer(obj(order.get("customer")), order=order)
    if customer is None:
        return None  # no address to write to (a phone-only or POS order)
    return build(
        OrderPlaced,
        {
            "id": event_id,
            "type": "order.created",
            "occurred_at": order.get("created_at") or at,
            "order": {
                "id": order["id"],
                "created_at": order.get("created_at"),
                "currency": order.get("currency"),
                "total": order.get("total_price"),
                "email": _order_email(order),
                "items": [_item(obj(line)) for line in order.get("line_items") or []],
                "discount_codes": code_list(order.get("discount_codes")),
            },
            "customer": customer,
        },
    )


def _order_fulfilled(order: dict[str, Any], event_id: str, at: datetime) -> Envelope:
    fulfilled = [
        moment
        for fulfillment in order.get("fulfillments") or []
        if (moment := _time(obj(fulfillment).get("created_at"))) is not None
    ]
    return build(
        OrderFulfilled,
        without_none(
            {
                "id": event_id,
                "type": "order.fulfilled",
                # The last fulfilment completes the order.
                "occurred_at": max(fulfilled, default=None) or order.get("updated_at") or at,
                "order": {"id": order["id"]},
                "customer": _customer(obj(order.get("customer")), order=order),
            }
        ),
    )


def _fulfillment_updated(
    fulfillment: dict[str, Any], event_id: str, at: datetime
) -> Envelope | None:
    # Only delivery is a moment our rules wait for ("after delivery"); transit updates are not.
    if fulfillment.get("shipment_status") != "delivered":
        return None
    return build(
        OrderFulfilled,
        {
            "id": event_id,
            "type": "order.fulfilled",
            "occurred_at": fulfillment.get("updated_at") or at,
            "order": {"id": fulfillment["order_id"]},
        },
    )


def _order_cancelled(order: dict[str, Any], event_id: str, at: datetime) -> Envelope:
    return build(
        OrderClosed,
        {
            "id": event_id,
            "type": "order.cancelled",
            "occurred_at": order.get("cancelled_at") or order.get("updated_at") or at,
            "order": {"id": order["id"]},
        },
    )


def _refund_created(refund: dict[str, Any], event_id: str, at: datetime) -> Envelope | None:
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
            "id": event_id,
            "type": "order.refunded",
            "occurred_at": refund.get("processed_at") or refund.get("created_at") or at,
            "order": {"id": order_id},
            "items": items,
        },
    )


def _customer_updated(customer: dict[str, Any], event_id: str, at: datetime) -> Envelope | None:
    fields = _customer(customer)
    if fields is None:
        return None  # a customer without an email address: nothing we can send them
    return build(
        CustomerUpdated,
        {
            "id": event_id,
            "type": "customer.updated",
            "occurred_at": customer.get("updated_at") or at,
            "customer": fields,
        },
    )


def _customer_redacted(request: dict[str, Any], event_id: str, at: datetime) -> Envelope:
    return build(
        CustomerDeleted,
        {
            "id": event_id,
            "type": "customer.deleted",
            "occurred_at": at,
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
    "fulfillments/update": _fulfillment_updated,
    "orders/cancelled": _order_cancelled,
    "refunds/create": _refund_created,
    "customers/create": _customer_updated,
    "customers/update": _customer_updated,
    "customers/redact": _customer_redacted,
}
TOPICS = frozenset(_MAPPERS) | RECORD_ONLY_TOPICS


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


def _item(line: dict[str, Any]) -> dict[str, Any]:
    attributes = without_none(
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
