"""The template context of one message: only what the customer, order and rule provide."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.models import Customer, Order, OrderItem


def _item(item: OrderItem) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "name": item.name,
        "category": item.category,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "tags": list(item.tags),
        "attributes": dict(item.attributes),
    }


def build_context(
    *,
    customer: Customer,
    order: Order | None,
    items: Sequence[OrderItem],
    send_at: datetime,
    matched_items: Sequence[OrderItem] | None = None,
    shop_name: str,
    unsubscribe_url: str | None = None,
) -> dict[str, Any]:
    return {
        "customer": {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "locale": customer.locale,
        },
        "order": {
            "id": order.external_id if order else None,
            "total": order.total if order else None,
            "currency": order.currency if order else None,
            "created_at": order.placed_at if order else None,
            "items": [_item(item) for item in items],
        },
        # `items`: what the rule is about (its `items` filter); `order.items`: everything bought.
        "items": [_item(item) for item in (items if matched_items is None else matched_items)],
        "shop": {"name": shop_name},
        "message": {"send_at": send_at},
        # Set for marketing mail only; the layout's footer links it when present.
        "unsubscribe_url": unsubscribe_url,
    }
