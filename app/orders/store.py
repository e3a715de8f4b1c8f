"""The lifecycle's store on SQL (app/lifecycle/store.py): one per delivery, in its
transaction, for one shop. It remembers what this delivery wrote (a new customer, the items
just stored) so that planning need not read it back."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.service import ProductMatch, find_products_for_items
from app.events import CustomerIn, CustomerRef, ItemIn, OrderIn
from app.lifecycle.store import CustomerState, OrderState, Upserted
from app.models import Customer, Order
from app.orders import repository
from app.orders.effects import IntakeEffects, StoredOrder
from app.outbox import planned as outbox
from app.planner.learned import GapStats, PastOrder
from app.planner.planner import PlannedMessage
from app.rules.facts import CustomerFacts, ItemFacts


class SqlStore:
    def __init__(
        self,
        session: AsyncSession,
        *,
        shop: str,
        default_time_zone: str = "UTC",
        effects: IntakeEffects | None = None,
        screened: repository.Screened | None = None,
    ) -> None:
        self.session = session
        # What intake learned about the event's person before this store began: whether the
        # address is suppressed, and their row, good until this store writes a customer.
        self._screened = screened
        self._suppressed: dict[str, bool] = {}
        if screened is not None and screened.email and screened.suppressed is not None:
            self._suppressed[screened.email] = screened.suppressed
        self.shop = shop
        self._default_zone = default_time_zone
        # None where no event can need them (re-planning an order or its anchors).
        self._effects = effects
        self._customers: dict[int, Customer] = {}
        self._orders: dict[int, Order] = {}
        # Created by this delivery: no other order of theirs exists yet.
        self._new_customers: set[int] = set()
        self._items: dict[int, tuple[ItemFacts, ...]] = {}

    # -- customers ------------------------------------------------------------------------------

    def _customer_state(self, customer: Customer) -> CustomerState:
        self._customers[customer.id] = customer
        return CustomerState(
            id=customer.id,
            email=customer.email,
            marketing_consent=customer.marketing_consent,
            deleted=customer.deleted_at is not None,
            tz=ZoneInfo(customer.time_zone or self._default_zone),
            facts=CustomerFacts(
                birthday=customer.birthday,
                attributes=customer.attributes,
                locale=customer.locale,
                country=customer.country,
                tags=tuple(customer.tags),
                key=f"{customer.shop}:{customer.external_id}",
            ),
        )

    async def upsert_customer(self, incoming: CustomerIn, *, as_of: datetime) -> Upserted:
        # Only what the event carries: a customer update without a locale or consent field
        # (most platform payloads) must not wipe what an earlier event told us.
        values: dict[str, Any] = incoming.model_dump(
            mode="python", exclude={"id"}, exclude_unset=True
        )
        values["email"] = str(incoming.email).lower() if incoming.email else None
        looked_up, self._screened = self._screened, None  # once: the upsert changes the answer
        stored, created = await repository.upsert_customer(
            self.session,
            shop=self.shop,
            external_id=incoming.id,
            values=values,
            as_of=as_of,
            looked_up=looked_up,
        )
        if created:
            self._new_customers.add(stored.id)
        # Whether it applied and what changed only the replay's job timetable needs.
        return Upserted(self._customer_state(stored), created=created, applied=True, changed=True)

    async def customer(self, customer_id: int) -> CustomerState:
        known = self._customers.get(customer_id)
        if known is None:
            known = await repository.get_customer(self.session, customer_id)
        return self._customer_state(known)

    async def erase_customer(self, incoming: CustomerRef, *, now: datetime) -> int:
        if self._effects is None:
            raise RuntimeError("this store was wired without an eraser")
        return await self._effects.erase_customer(self.session, self.shop, incoming, now)

    # -- orders ---------------------------------------------------------------------------------

    def track_order(self, order: Order) -> OrderState:
        """An order row read elsewhere, now known to this store."""
        return self._order_state(order)

    def _order_state(self, order: Order) -> OrderState:
        self._orders[order.id] = order
        return OrderState(
            id=order.id,
            customer_id=order.customer_id,
            status=order.status,
            placed_at=order.placed_at,
            fulfilled_at=order.fulfilled_at,
            delivered_at=order.delivered_at,
            total=order.total,
            currency=order.currency,
            refunds=order.refunds,
        )

    async def place_order(
        self, order: OrderIn, *, customer: CustomerState, email: str | None
    ) -> tuple[OrderState, bool]:
        stored, created = await repository.upsert_order(
            self.session,
            shop=self.shop,
            external_id=order.id,
            values={
                "customer_id": customer.id,
                "email": email,
                "currency": order.currency,
                "total": order.total,
                "placed_at": order.created_at,
                "discount_codes": list(order.discount_codes),
                "number": order.number,
                "attributes": order.attributes,
            },
        )
        return self._order_state(stored), created

    async def order(self, external_id: str) -> OrderState:
        stored = await repository.ensure_order(
            self.session, shop=self.shop, external_id=external_id
        )
        return self._order_state(stored)

    async def update_order(self, order: OrderState, **changes: object) -> OrderState:
        stored = self._orders[order.id]
        for name, value in changes.items():
            if name == "refunds":
                # A new list, not an in-place append: the JSON column must see the change.
                value = list(value)  # type: ignore[call-overload]
            setattr(stored, name, value)
        await self.session.flush()
        return self._order_state(stored)

    async def close_order(
        self, order: OrderState, status: str, *, at: datetime | None
    ) -> OrderState:
        stored = self._orders[order.id]
        stored.status = status
        if status == "cancelled":
            stored.cancelled_at = stored.cancelled_at or at
        else:
            stored.refunded_at = stored.refunded_at or at
        await self.session.flush()
        return self._order_state(stored)

    async def has_items(self, order: OrderState) -> bool:
        return await repository.order_has_items(self.session, order.id)

    async def add_items(self, order: OrderState, items: Sequence[ItemIn]) -> tuple[ItemFacts, ...]:
        # Each item's catalog product, so rules see its categories, type, vendor and tags.
        found = await find_products_for_items(
            self.session,
            shop=self.shop,
            items=[(item.product_id, item.variant_id, item.sku) for item in items],
        )
        stored = await repository.add_items(
            self.session,
            order.id,
            [_item_row(item, match) for item, match in zip(items, found, strict=True)],
            [match.product if match else None for match in found],
        )
        facts = self._items[order.id] = tuple(row.facts() for row in stored)
        return facts

    async def items(self, order: OrderState) -> tuple[ItemFacts, ...]:
        known = self._items.get(order.id)
        if known is None:
            rows = await repository.order_items(self.session, order.id)
            known = self._items[order.id] = tuple(row.facts() for row in rows)
        return known

    async def is_first_order(self, order: OrderState, customer: CustomerState) -> bool:
        if customer.id in self._new_customers:
            return True  # this order is their only one
        earlier = await repository.count_earlier_orders(
            self.session, customer_id=customer.id, order_id=order.id, placed_at=order.placed_at
        )
        return earlier == 0

    async def past_orders(self, order: OrderState, customer: CustomerState) -> list[PastOrder]:
        if customer.id in self._new_customers:
            return []
        return await repository.past_orders(
            self.session, customer_id=customer.id, before_order_id=order.id
        )

    async def customer_totals(self, customer: CustomerState) -> tuple[int, dict[str, Decimal]]:
        return await repository.customer_totals(self.session, customer_id=customer.id)

    async def standing_orders(self, customer: CustomerState) -> list[OrderState]:
        rows = await repository.standing_orders(self.session, customer_id=customer.id)
        return [self._order_state(row) for row in rows]

    async def order_stored(
        self, order: OrderState, incoming: OrderIn, *, new_order: bool, new_customer: bool
    ) -> None:
        if self._effects is None:
            return
        stored = StoredOrder(self._orders[order.id], incoming, new_order, new_customer)
        for effect in self._effects.order_stored:
            await effect(self.session, stored)

    # -- learned timing ------------------------------------------------------------------------

    async def product_gaps(self, rule_ids: Sequence[str]) -> dict[str, GapStats]:
        return await repository.product_gap_stats(self.session, rule_ids)

    async def record_gap(
        self,
        rule_id: str,
        *,
        customer: CustomerState,
        order: OrderState,
        log_days: float,
        observed_at: datetime,
    ) -> None:
        await repository.record_gap(
            self.session,
            rule_id=rule_id,
            customer_id=customer.id,
            order_id=order.id,
            log_days=log_days,
            observed_at=observed_at,
        )

    # -- the outbox ----------------------------------------------------------------------------

    async def is_suppressed(self, email: str) -> bool:
        known = self._suppressed.get(email)
        if known is None:
            known = self._suppressed[email] = await repository.is_suppressed(self.session, email)
        return known

    async def decided_keys(self, dedupe_keys: Collection[str]) -> set[str]:
        return await outbox.decided_keys(self.session, list(dedupe_keys))

    async def insert_planned(
        self, planned: Sequence[PlannedMessage], *, customer_id: int, order_id: int | None
    ) -> int:
        return await outbox.insert_planned(
            self.session, planned, customer_id=customer_id, order_id=order_id
        )

    async def waiting(self, order: OrderState) -> list[tuple[int, str]]:
        return await outbox.pending_messages(self.session, order_id=order.id)

    async def cancel_waiting(
        self,
        *,
        reason: str,
        order: OrderState | None = None,
        ids: Sequence[int] | None = None,
        dedupe_keys: Sequence[str] | None = None,
    ) -> int:
        return await outbox.cancel_pending(
            self.session,
            reason=reason,
            order_id=order.id if order is not None else None,
            ids=ids,
            dedupe_keys=dedupe_keys,
        )

    async def skip_waiting_marketing(self, customer: CustomerState) -> int:
        return await outbox.skip_pending_marketing(self.session, customer_id=customer.id)


def _item_row(item: ItemIn, match: ProductMatch | None) -> dict[str, Any]:
    """An item's columns: the platform's ids are its product_ref and variant_ref; `match`
    its catalog product, if the catalog has it."""
    row = item.model_dump(mode="python", exclude={"product_id", "variant_id"})
    row["product_ref"] = item.product_id
    row["variant_ref"] = item.variant_id
    row["catalog_product_id"] = match.product.id if match else None
    row["catalog_variant_id"] = match.variant.id if match and match.variant else None
    return row
