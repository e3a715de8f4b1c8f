"""Shopify's "Export orders" CSV -> our events, for the history import. Pure.

The export has one row per line item. The order's own columns (Email, Created at, Currency,
Total, Fulfilled at, Cancelled at, Billing Name, Accepts Marketing, Id, ...) are filled on
its first row only; every row has its Name (`#1001`) and its line's Lineitem columns.
It has no product type (our item category) and, in most versions, no customer id: a
customer is then keyed by address as a guest checkout is (`guest_customer_id`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.events import Envelope, OrderClosed, OrderFulfilled, OrderPlaced
from app.intake.payloads import PayloadError, build, guest_customer_id, without_none

REQUIRED_COLUMNS = ("Name", "Email", "Created at", "Currency", "Total", "Lineitem name")
# Not in Shopify's own export; some export apps add one, and then it keys the customer.
CUSTOMER_ID_COLUMNS = ("Customer ID", "Customer Id", "Customer: ID")
DELIVERY_PREFIX = "shopify-csv:"

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NAME_LENGTH = 200


class NoEmail(PayloadError):
    """An order without an email address (a POS or phone order): nothing to learn for mail,
    as the webhook would ignore it too."""


def missing_columns(header: Sequence[str]) -> list[str]:
    return [column for column in REQUIRED_COLUMNS if column not in header]


def order_events(rows: Sequence[Mapping[str, str]]) -> list[Envelope]:
    """The events of one order (its rows, first row first), in the order to ingest them:
    a cancellation or refund first, so the order never counts as a purchase to learn from,
    then the order, then its fulfilment. Raises PayloadError naming the bad column."""
    first = rows[0]
    name = _cell(first, "Name")
    if name is None:
        raise PayloadError("Name: missing")
    email = _cell(first, "Email")
    if email is None:
        raise NoEmail(f"{name}: no Email")
    order_id = _cell(first, "Id") or name
    placed_at = _time(first, "Created at")
    if placed_at is None:
        raise PayloadError("Created at: missing")
    delivery = DELIVERY_PREFIX + name
    events: list[Envelope] = []
    closed_at = _time(first, "Cancelled at")
    if closed_at is not None:
        events.append(_closed("order.cancelled", delivery, order_id, closed_at))
    elif (_cell(first, "Financial Status") or "").lower() == "refunded":
        # The export has no refund time; the last time it has stands in.
        refunded_at = _time(first, "Fulfilled at") or _time(first, "Paid at") or placed_at
        events.append(_closed("order.refunded", delivery, order_id, refunded_at))
    first_name, last_name = _split_name(_cell(first, "Billing Name"))
    country = (_cell(first, "Billing Country") or "").upper()
    events.append(
        build(
            OrderPlaced,
            {
                "id": delivery,
                "type": "order.created",
                "occurred_at": placed_at,
                "order": {
                    "id": order_id,
                    "number": name,
                    "created_at": placed_at,
                    "currency": _cell(first, "Currency"),
                    "total": _money(first, "Total"),
                    "email": email,
                    "items": [_item(row) for row in rows],
                },
                "customer": without_none(
                    {
                        "id": _customer_id(first) or guest_customer_id(email),
                        "email": email,
                        "first_name": first_name,
                        "last_name": last_name,
                        "country": country if _COUNTRY.match(country) else None,
                        "marketing_consent": (_cell(first, "Accepts Marketing") or "").lower()
                        == "yes",
                    }
                ),
            },
        )
    )
    fulfilled_at = _time(first, "Fulfilled at")
    if fulfilled_at is not None:
        events.append(
            build(
                OrderFulfilled,
                {
                    "id": f"{delivery}:fulfilled",
                    "type": "order.fulfilled",
                    "occurred_at": fulfilled_at,
                    "order": {"id": order_id},
                },
            )
        )
    return events


def _closed(event_type: str, delivery: str, order_id: str, at: datetime) -> Envelope:
    kind = event_type.removeprefix("order.")
    return build(
        OrderClosed,
        {
            "id": f"{delivery}:{kind}",
            "type": event_type,
            "occurred_at": at,
            "order": {"id": order_id},
        },
    )


def _item(row: Mapping[str, str]) -> dict[str, Any]:
    quantity = _cell(row, "Lineitem quantity")
    try:
        count = int(quantity) if quantity is not None else 1
    except ValueError:
        raise PayloadError("Lineitem quantity: not a whole number") from None
    # The export names no product or variant id: the SKU alone finds the catalog product.
    return without_none(
        {
            "sku": _cell(row, "Lineitem sku"),
            "name": _cell(row, "Lineitem name"),
            "quantity": count,
            "unit_price": _money(row, "Lineitem price"),
            "attributes": without_none({"vendor": _cell(row, "Vendor")}),
        }
    )


def _cell(row: Mapping[str, str | None], column: str) -> str | None:
    value = row.get(column)
    return (value.strip() or None) if isinstance(value, str) else None


def _customer_id(row: Mapping[str, str]) -> str | None:
    return next((value for column in CUSTOMER_ID_COLUMNS if (value := _cell(row, column))), None)


def _money(row: Mapping[str, str], column: str) -> Decimal | None:
    value = _cell(row, column)
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise PayloadError(f"{column}: not an amount") from None


def _time(row: Mapping[str, str], column: str) -> datetime | None:
    """Shopify writes `2025-10-07 09:50:26 +0200`; ISO 8601 with an offset is read too."""
    value = _cell(row, column)
    if value is None:
        return None
    for parse in (
        lambda text: datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z"),
        datetime.fromisoformat,
    ):
        try:
            moment = parse(value)
        except ValueError:
            continue
        if moment.tzinfo is not None:
            return moment
    raise PayloadError(f"{column}: not a time with an offset (like 2025-10-07 09:50:26 +0200)")


def _split_name(value: str | None) -> tuple[str | None, str | None]:
    # Shopify joins an address's names as "first last", whatever the script, so the first
    # word is the first name (a first name of two words loses its second to the last name).
    if value is None:
        return None, None
    first, _, last = value.partition(" ")
    return first[:_NAME_LENGTH] or None, last.strip()[:_NAME_LENGTH] or None
