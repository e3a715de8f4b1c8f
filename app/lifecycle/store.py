"""The narrow interface between the lifecycle's decisions and where its state lives.

The service implements it on SQL (app/orders/store.py, one per delivery, in its
transaction); `simulate` on memory (app/lifecycle/memory.py). The flows in
app/lifecycle/flows.py are written once against it. Methods are async because the SQL store
awaits the database; the memory store never suspends.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from app.events import CustomerIn, CustomerRef, ItemIn, OrderIn
from app.planner.learned import GapStats, PastOrder
from app.planner.planner import PlannedMessage
from app.rules.facts import CustomerFacts, ItemFacts


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What the decisions read of a customer."""

    id: int
    email: str | None
    marketing_consent: bool
    deleted: bool
    tz: ZoneInfo
    facts: CustomerFacts


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the decisions read of an order (also of one known only from a later event)."""

    id: int
    customer_id: int | None
    status: str
    placed_at: datetime | None
    fulfilled_at: datetime | None
    delivered_at: datetime | None
    total: Decimal | None
    currency: str | None
    # Partial refunds: {"sku", "quantity", "at"}, as `orders.refunds` holds them.
    refunds: Sequence[dict[str, object]]


@dataclass(frozen=True, slots=True)
class Upserted:
    customer: CustomerState
    created: bool  # this event made the customer: no orders, mail or history yet
    applied: bool  # False: an event older than the last one applied changed nothing
    changed: bool  # something birthday and anchor plans read changed


class LifecycleStore(Protocol):
    # -- customers ------------------------------------------------------------------------------
    async def upsert_customer(self, incoming: CustomerIn, *, as_of: datetime) -> Upserted:
        """Create or update the person's customer with only the fields the event carries."""
        ...

    async def customer(self, customer_id: int) -> CustomerState: ...

    async def erase_customer(self, incoming: CustomerRef, *, now: datetime) -> int:
        """Erase the person (by the shop's id and address); returns messages cancelled."""
        ...

    # -- orders ---------------------------------------------------------------------------------
    async def place_order(
        self, order: OrderIn, *, customer: CustomerState, email: str | None
    ) -> tuple[OrderState, bool]:
        """Create the order or fill in one known bare; and whether it was created."""
        ...

    async def order(self, external_id: str) -> OrderState:
        """The order, created bare when an event about it comes before the order itself."""
        ...

    async def update_order(self, order: OrderState, **changes: object) -> OrderState:
        """Set `status`, `customer_id`, `refunds`, `fulfilled_at` or `delivered_at`; returns
        the order as it is now."""
        ...

    async def close_order(
        self, order: OrderState, status: str, *, at: datetime | None
    ) -> OrderState:
        """Cancelled or refunded, keeping the time it first closed."""
        ...

    async def has_items(self, order: OrderState) -> bool: ...

    async def add_items(self, order: OrderState, items: Sequence[ItemIn]) -> tuple[ItemFacts, ...]:
        """Store the order's items, each with its catalog product when the catalog has it."""
        ...

    async def items(self, order: OrderState) -> tuple[ItemFacts, ...]: ...

    async def is_first_order(self, order: OrderState, customer: CustomerState) -> bool:
        """No earlier order of this customer (cancelled ones count: they were orders)."""
        ...

    async def past_orders(self, order: OrderState, customer: CustomerState) -> list[PastOrder]:
        """The customer's latest standing orders other than this one, newest first."""
        ...

    async def customer_totals(self, customer: CustomerState) -> tuple[int, dict[str, Decimal]]:
        """How many standing orders the customer has, and their totals per currency."""
        ...

    async def standing_orders(self, customer: CustomerState) -> list[OrderState]:
        """Placed and not cancelled or refunded, oldest first."""
        ...

    async def order_stored(
        self, order: OrderState, incoming: OrderIn, *, new_order: bool, new_customer: bool
    ) -> None:
        """What else the order means, outside the lifecycle (coupons redeemed, conversions
        credited): registered where the store is wired, not decided here."""
        ...

    # -- learned timing ------------------------------------------------------------------------
    async def product_gaps(self, rule_ids: Sequence[str]) -> dict[str, GapStats]: ...

    async def record_gap(
        self,
        rule_id: str,
        *,
        customer: CustomerState,
        order: OrderState,
        log_days: float,
        observed_at: datetime,
    ) -> None:
        """One observation per rule and order."""
        ...

    # -- the outbox ----------------------------------------------------------------------------
    async def is_suppressed(self, email: str) -> bool: ...

    async def decided_keys(self, dedupe_keys: Collection[str]) -> set[str]:
        """Which of these messages exist and no longer wait."""
        ...

    async def insert_planned(
        self, planned: Sequence[PlannedMessage], *, customer_id: int, order_id: int | None
    ) -> int:
        """Store new messages; one planned before (same dedupe key) is left alone."""
        ...

    async def waiting(self, order: OrderState) -> list[tuple[int, str]]:
        """(id, rule id) of the order's messages still waiting."""
        ...

    async def cancel_waiting(
        self,
        *,
        reason: str,
        order: OrderState | None = None,
        ids: Sequence[int] | None = None,
        dedupe_keys: Sequence[str] | None = None,
    ) -> int:
        """Cancel waiting messages (of the order, with these ids, or with these keys)."""
        ...

    async def skip_waiting_marketing(self, customer: CustomerState) -> int:
        """Consent withdrawn: the customer's waiting marketing mail is skipped (`no_consent`)."""
        ...
