"""What else an order or an erasure means outside the lifecycle: given where intake is wired
(app/intake/effects.py), so that orders import neither coupons, stats nor privacy.

Each runs in the delivery's transaction: an order is stored with its effects or not at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import CustomerRef, OrderIn
from app.models import Order


@dataclass(frozen=True)
class StoredOrder:
    """An order as this delivery left it."""

    order: Order
    incoming: OrderIn
    new_order: bool  # created by this delivery
    new_customer: bool  # its customer too


# Called once an order placed is stored with its items (e.g. redeem coupon codes, credit a
# conversion to the mail that brought it).
OrderEffect = Callable[[AsyncSession, StoredOrder], Awaitable[None]]
# Erase the shop's person a `customer.deleted` names, by id and by address, everywhere
# (app/customers/service.py); returns messages cancelled.
Eraser = Callable[[AsyncSession, str, CustomerRef, datetime], Awaitable[int]]


@dataclass(frozen=True)
class IntakeEffects:
    erase_customer: Eraser
    order_stored: Sequence[OrderEffect] = ()
