"""The template context of one message: only what the customer, order and rule provide.

`build_context` reads plain attributes, so the dispatcher passes database rows and the
preview passes a webhook body (see the protocols below); both get the same context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from app.catalog.links import ShopLinks


class ContextCustomer(Protocol):
    """A `Customer` row, or a webhook's `CustomerIn`."""

    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def locale(self) -> str | None: ...


class ContextOrder(Protocol):
    """An `Order` row, or `OrderView` of a webhook's order."""

    @property
    def external_id(self) -> str: ...
    @property
    def number(self) -> str | None: ...
    @property
    def total(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def placed_at(self) -> datetime | None: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


class ContextItem(Protocol):
    """An `OrderItem` row, or a webhook's `ItemIn`."""

    @property
    def sku(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit_price(self) -> Decimal | None: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


def _item(item: ContextItem, links: ShopLinks) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "name": item.name,
        "category": item.category,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "tags": list(item.tags),
        "attributes": dict(item.attributes),
        # url, image_url, product (the catalog's), reorder_url; None when unknown.
        **links.item(item),
    }


def build_context(
    *,
    customer: ContextCustomer,
    order: ContextOrder | None,
    items: Sequence[ContextItem],
    send_at: datetime,
    matched_items: Sequence[ContextItem] | None = None,
    shop_name: str,
    unsubscribe_url: str | None = None,
    coupon: Mapping[str, Any] | None = None,
    survey: Mapping[str, Any] | None = None,
    review: Mapping[str, Any] | None = None,
    recommendations: Sequence[Mapping[str, Any]] | None = None,
    links: ShopLinks | None = None,
    rule_links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The context of one message. `links`: the shop's URL and address and what the catalog
    knows of the items (app/catalog/links.py); without it, every link is None. `rule_links`:
    the rule's `links`, paths resolved under the shop's URL."""
    links = links or ShopLinks()
    return {
        "customer": {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "locale": customer.locale,
        },
        "order": {
            # `id`: the platform's; `number`: what the customer knows (templates put the "#").
            "id": order.external_id if order else None,
            "number": (order.number or order.external_id) if order else None,
            "attributes": dict(order.attributes) if order else {},
            "total": order.total if order else None,
            "currency": order.currency if order else None,
            "created_at": order.placed_at if order else None,
            "items": [_item(item, links) for item in items],
        },
        # `items`: what the rule is about (its `items` filter); `order.items`: everything bought.
        "items": [
            _item(item, links) for item in (items if matched_items is None else matched_items)
        ],
        # `shop.address`: the postal address; the layout's footer shows it in marketing mail.
        "shop": {"name": shop_name, "url": links.url, "address": links.address},
        "links": links.resolve(rule_links or {}),
        "message": {"send_at": send_at},
        # Set for marketing mail only; the layout's footer links it when present.
        "unsubscribe_url": unsubscribe_url,
        # The rule's coupon code {code, pool, expires_at}; None without one (`{% if coupon %}`).
        "coupon": dict(coupon) if coupon is not None else None,
        # `survey.links` (the 0-10 answer links) and `survey.urls`: app/survey/links.py.
        "survey": dict(survey) if survey is not None else None,
        # A rule with `review`: `review.items`, each product with its star links
        # (app/reviews/links.py); None otherwise (`{% if review %}`).
        "review": dict(review) if review is not None else None,
        # Catalog products for a rule with `recommend` ({title, url, image_url, price,
        # currency, sku, product_id}, app/catalog/recommendations.py); empty otherwise.
        "recommendations": [dict(product) for product in recommendations or ()],
    }
