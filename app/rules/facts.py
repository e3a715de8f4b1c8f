"""What rules look at: plain facts about an order and its items, no ORM rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from app.rules.categories import category_path, path_of


@dataclass(frozen=True)
class ItemFacts:
    sku: str | None
    # The item's own category, as the order carried it.
    category: str | None
    quantity: int = 1
    unit_price: Decimal | None = None
    # The item's tags and its product's.
    tags: tuple[str, ...] = field(default=())
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # From the catalog product the item resolved to (see `item_facts`).
    product_type: str | None = None
    vendor: str | None = None
    # The categories rules match, in their compared form (`app/rules/categories.py`): the
    # product's paths; without any, the item's own category and the product's type.
    category_paths: tuple[str, ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        """`category_paths`, or for facts built without them (tests, older callers) the
        item's own category."""
        if self.category_paths:
            return self.category_paths
        own = category_path(self.category) if self.category else ""
        return (own,) if own else ()


@dataclass(frozen=True)
class ProductFacts:
    """What the catalog knows of an item's product that rules look at."""

    product_type: str | None = None
    vendor: str | None = None
    # As the shop names them, root first: ("Baby & Toddler", "Diapering", "Diapers").
    category_paths: tuple[tuple[str, ...], ...] = ()
    tags: tuple[str, ...] = ()


def item_facts(
    *,
    sku: str | None,
    category: str | None,
    quantity: int,
    unit_price: Decimal | None,
    tags: Sequence[str],
    attributes: Mapping[str, Any],
    product: ProductFacts | None,
) -> ItemFacts:
    """The facts of an order item and its catalog product (None: not in the catalog, or not
    yet): the one builder the planner, the dispatcher's send-time checks, refunds, preview
    and simulate all use, so a rule matches an item the same way everywhere."""
    if product is None:
        return ItemFacts(
            sku=sku,
            category=category,
            quantity=quantity,
            unit_price=unit_price,
            tags=tuple(tags),
            attributes=attributes,
            category_paths=_paths((), category, None),
        )
    return ItemFacts(
        sku=sku,
        category=category,
        quantity=quantity,
        unit_price=unit_price,
        tags=tuple(dict.fromkeys((*tags, *product.tags))),
        attributes=attributes,
        product_type=product.product_type,
        vendor=product.vendor,
        category_paths=_paths(product.category_paths, category, product.product_type),
    )


def _paths(
    shop_paths: Sequence[Sequence[str]], own: str | None, product_type: str | None
) -> tuple[str, ...]:
    paths = [path_of(path) for path in shop_paths]
    if not any(paths):
        # A product without the shop's categories (a Shopify shop that does not use the
        # taxonomy): what the order says, and the product's type, which such shops use as one.
        paths = [category_path(value) for value in (own, product_type) if value]
    return tuple(dict.fromkeys(path for path in paths if path))


@dataclass(frozen=True)
class CustomerFacts:
    birthday: date | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    locale: str | None = None
    country: str | None = None
    tags: tuple[str, ...] = ()
    # Stable across processes and replays (shop + the shop's customer id): variants and
    # holdout groups are drawn from it.
    key: str = ""
    # Filled only when a rule asks (`customer: {orders, spent}`): standing orders, this one
    # included, and what they came to per currency.
    orders: int | None = None
    spent: Mapping[str, Decimal] | None = None


@dataclass(frozen=True)
class OrderFacts:
    id: int
    status: str
    placed_at: datetime | None
    items: tuple[ItemFacts, ...]
    total: Decimal | None = None
    currency: str | None = None
    # None when unknown (history not loaded): `first_order` filters then do not match.
    first_order: bool | None = None
    # Reported delivered (then an order.delivered rule's fallback is not planned).
    delivered_at: datetime | None = None
