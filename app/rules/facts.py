"""What rules look at: plain facts about an order and its items, no ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class ItemFacts:
    sku: str | None
    category: str | None
    quantity: int = 1
    unit_price: Decimal | None = None
    tags: tuple[str, ...] = field(default=())


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
