"""WooCommerce webhook payloads -> our events. Pure: a topic and its JSON in, an Envelope out.

WooCommerce sends the REST API (v3) resource of the topic, and for `*.deleted` only `{"id": N}`.
Its times come in the site's zone and as `*_gmt` without an offset; we read the `*_gmt` ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from app.config import normalize_host
from app.orders.platforms import (
    Mapper,
    build,
    code_list,
    guest_customer_id,
    obj,
    run_mapper,
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

SOURCE = "woocommerce"
# The test delivery WooCommerce posts when a webhook is saved: a form body, no topic, unsigned.
_PING = re.compile(rb"^webhook_id=\d+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_YES = frozenset({"yes", "1", "true"})
# `order.updated` fires on every change; only these statuses are events for us.
_STATUS_EVENTS = {
    "completed": "order.fulfilled",
    "cancelled": "order.cancelled",
    "refunded": "order.refunded",
}
_PRICE_STEP = Decimal("0.0001")  # the 4 decimal places ItemIn.unit_price keeps


def to_event(
    topic: str,
    payload: dict[str, Any],
    *,
    event_id: str,
    received_at: datetime,
    consent_meta_key: str,
) -> Envelope | None:
    """The event for this delivery; None when the topic or the order's status is nothing for us.

    `received_at` stands in for payloads that carry no time of their own (deletions). Raises
    PayloadError when an order or customer cannot be read from the payload.
    """
    mapper = _MAPPERS.get(topic)
    if mapper is None:
        return None
    bound: Mapper = partial(mapper, consent_meta_key=consent_meta_key)
    return run_mapper(bound, topic, payload, event_id, received_at)


def is_ping(topic_header: str | None, body: bytes) -> bool:
    return not topic_header and _PING.match(body.strip()) is not None


def source_host(header: str | None) -> str | None:
    """The host of `X-WC-Webhook-Source` (the site URL, e.g. `https://shop.example/`)."""
    try:
        return normalize_host(urlsplit((header or "").strip()).hostname)
    except ValueError:
        return None


def _order_created(
    order: dict[str, Any], event_id: str, at: datetime, *, consent_meta_key: str
) -> Envelope | None:
    customer = _order_customer(order, consent_meta_key)
    if customer is None:
        return None  # no billing email: nothing we can send
    created = _gmt(order.get("date_created_gmt")) or at
    return build(
        OrderPlaced,
        {
            "id": event_id,
            "type": "order.created",
            "occurred_at": created,
            "order": {
                "id": order["id"],
                "created_at": created,
                "currency": order.get("currency"),
                "total": order.get("total"),
                "email": customer["email"],
                "items": [_item(obj(line)) for line in order.get("line_items") or []],
                "discount_codes": code_list(order.get("coupon_lines")),
            },
            "customer": customer,
        },
    )


def _order_updated(
    order: dict[str, Any], event_id: str, at: datetime, *, consent_meta_key: str
) -> Envelope | None:
    event_type = _STATUS_EVENTS.get(str(order.get("status")))
    if event_type is None:
        return None
    changed = _gmt(order.get("date_modified_gmt")) or at
    if event_type == "order.fulfilled":
        return build(
            OrderFulfilled,
            without_none(
                {
                    "id": event_id,
                    "type": event_type,
                    "occurred_at": _gmt(order.get("date_completed_gmt")) or changed,
                    "order": {"id": order["id"]},
                    "customer": _order_customer(order, consent_meta_key),
                }
            ),
        )
    return build(
        OrderClosed,
        {"id": event_id, "type": event_type, "occurred_at": changed, "order": {"id": order["id"]}},
    )


def _order_deleted(
    order: dict[str, Any], event_id: str, at: datetime, *, consent_meta_key: str
) -> Envelope:
    # Moved to the trash (or deleted): for our messages the same as cancelled.
    return build(
        OrderClosed,
        {
            "id": event_id,
            "type": "order.cancelled",
            "occurred_at": at,
            "order": {"id": order["id"]},
        },
    )


def _customer_updated(
    customer: dict[str, Any], event_id: str, at: datetime, *, consent_meta_key: str
) -> Envelope | None:
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
            "marketing_consent": _consent(customer.get("meta_data"), consent_meta_key),
        }
    )
    return build(
        CustomerUpdated,
        {
            "id": event_id,
            "type": "customer.updated",
            "occurred_at": _gmt(customer.get("date_modified_gmt")) or at,
            "customer": fields,
        },
    )


def _customer_deleted(
    customer: dict[str, Any], event_id: str, at: datetime, *, consent_meta_key: str
) -> Envelope:
    return build(
        CustomerDeleted,
        {
            "id": event_id,
            "type": "customer.deleted",
            "occurred_at": at,
            "customer": {"id": customer["id"]},
        },
    )


_MAPPERS: dict[str, Callable[..., Envelope | None]] = {
    "order.created": _order_created,
    "order.updated": _order_updated,
    "order.deleted": _order_deleted,
    "customer.created": _customer_updated,
    "customer.updated": _customer_updated,
    "customer.deleted": _customer_deleted,
}
TOPICS = frozenset(_MAPPERS)


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
        }
    )


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
