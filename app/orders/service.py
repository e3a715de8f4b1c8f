"""Order intake: one webhook delivery -> recorded once, then its event applied by the
lifecycle (app/lifecycle/flows.py) on the SQL store (app/orders/store.py).

Everything happens in the caller's transaction, so a delivery is stored whole or not at all.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import CustomerDeleted, Envelope, IntakeResult, OrderPlaced
from app.lifecycle import flows
from app.models import Order
from app.orders import repository
from app.orders.effects import IntakeEffects
from app.orders.store import SqlStore
from app.rules.loader import RuleSet

log = logging.getLogger(__name__)


async def ingest_event(
    session: AsyncSession,
    *,
    source: str,
    shop: str,
    event: Envelope,
    raw_body: str,
    rules: RuleSet,
    now: datetime,
    default_time_zone: str = "UTC",
    plan_messages: bool = True,
    effects: IntakeEffects,
) -> IntakeResult:
    """Record the delivery once, then apply its event (a repeat is answered `duplicate`).

    `plan_messages=False` (history import) stores customers, orders and items and learns
    repurchase gaps, but plans no message: the past must not be mailed.
    """
    delivery = await repository.record_delivery(
        session,
        source=source,
        shop=shop,
        delivery_id=event.id,
        event_type=event.type,
        body=raw_body,
        received_at=now,
    )
    if delivery is None:
        return IntakeResult(status="duplicate", event_id=event.id)
    return await apply_event(
        session,
        delivery=delivery,
        shop=shop,
        event=event,
        rules=rules,
        now=now,
        default_time_zone=default_time_zone,
        plan_messages=plan_messages,
        effects=effects,
    )


async def apply_event(
    session: AsyncSession,
    *,
    delivery: int,
    shop: str,
    event: Envelope,
    rules: RuleSet,
    now: datetime,
    default_time_zone: str = "UTC",
    plan_messages: bool = True,
    effects: IntakeEffects,
) -> IntakeResult:
    """Apply the event of a delivery already recorded (row id `delivery`).

    `effects`: what else orders and erasures mean (coupons, conversions, erasure), as
    intake wires them (app/intake/effects.py).
    """
    erased, screened = await _screen(session, shop=shop, event=event)
    if erased:
        # Erasure stays done: nothing of it is stored (its raw body neither), nothing planned.
        await repository.blank_delivery(session, delivery=delivery)
        log.info("%s %s is about an erased customer: ignored", event.type, event.id)
        return IntakeResult(status="ignored", event_id=event.id)
    store = SqlStore(
        session,
        shop=shop,
        default_time_zone=default_time_zone,
        effects=effects,
        screened=screened,
    )
    applied = await flows.apply_event(
        store, event, rules=rules, now=now, plan_messages=plan_messages
    )
    result = IntakeResult(
        status="accepted",
        event_id=event.id,
        messages_planned=applied.planned,
        messages_cancelled=applied.cancelled,
    )
    customer_id = applied.customer_id
    if customer_id is None:
        customer_id = await _whose(session, shop=shop, event=event)
    if customer_id is not None:
        await repository.link_delivery(session, delivery_id=delivery, customer_id=customer_id)
    return result


async def _screen(
    session: AsyncSession, *, shop: str, event: Envelope
) -> tuple[bool, repository.Screened | None]:
    """Whether the event is about someone erased and must change nothing: an order placed
    before their erasure, any update of them as a customer, anything about their orders.
    Only a new order placed after the erasure brings the person back, as a new customer.

    Also, from the same statement, what the store would ask next about the event's person:
    whether their address is suppressed, and their customer row.
    """
    if isinstance(event, CustomerDeleted):
        return False, None  # erasing again changes nothing anyway
    customer = getattr(event, "customer", None)
    if customer is not None:
        email = getattr(customer, "email", None)
        screened = await repository.screen_person(
            session,
            shop=shop,
            external_id=customer.id,
            email=str(email).lower() if email else None,
        )
        erased = screened.erased_at
        if erased is None:
            return False, screened
        return not isinstance(event, OrderPlaced) or event.occurred_at <= erased, screened
    order = getattr(event, "order", None)
    if order is not None:
        erased_order = await repository.order_of_erased_customer(
            session, shop=shop, external_id=order.id
        )
        return erased_order, None
    return False, None


async def _whose(session: AsyncSession, *, shop: str, event: Envelope) -> int | None:
    """The customer whose data this delivery carries (erasure and export find it by this)."""
    customer = getattr(event, "customer", None)
    if customer is not None:
        return await repository.customer_id_for(
            session, shop=shop, external_id=customer.id, email=customer.email
        )
    order = getattr(event, "order", None)
    if order is not None:
        return await repository.order_customer_id(session, shop=shop, external_id=order.id)
    return None


async def plan_order_again(
    session: AsyncSession, *, order: Order, rules: RuleSet, default_tz: str
) -> int:
    """Plan what has happened to the order again from its items as they are now (their
    products arrived late: `late.py`); see flows.plan_order_again."""
    store = SqlStore(session, shop=order.shop, default_time_zone=default_tz)
    return await flows.plan_order_again(store, store.track_order(order), rules=rules)


async def replan_anchors(
    session: AsyncSession, *, customer_id: int, rules: RuleSet, now: datetime, default_tz: str
) -> int:
    """The anchor job's work for one customer whose data changed: flows.replan_anchors."""
    if not rules.anchored.rules:
        return 0
    customer = await repository.get_customer(session, customer_id)
    store = SqlStore(session, shop=customer.shop, default_time_zone=default_tz)
    return await flows.replan_anchors(store, customer_id, rules=rules, now=now)
