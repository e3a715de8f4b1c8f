"""What rules look at: plain facts about an order and its items, no ORM rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class ItemFacts:
    sku: str | None
    category: str | None
    quantity: int = 1
    unit_price: Decimal | None = None
    tags: tuple[str, ...] = field(default=())
    attributes: Mapping[str, Any] = field(default_factory=dict)


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
