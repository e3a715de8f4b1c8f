"""Order intake: one webhook event -> customer, order, items and planned messages.

Everything happens in the caller's transaction, so a delivery is stored whole or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.service import ProductMatch, find_products_for_items
from app.coupons.service import redeem_order_codes
from app.customers.service import erase_customer
from app.erasures import erased_at
from app.models import Customer, MessageStatus, Order, OrderItem, OrderStatus
from app.orders import repository
from app.orders.refunds import fully_refunded, refunded_rule_ids, without_refunded
from app.orders.schemas import (
    CustomerDeleted,
    CustomerIn,
    CustomerUpdated,
    Envelope,
    IntakeResult,
    ItemIn,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.outbox import planned as outbox
from app.outbox.checks import Purchase, SendFacts, send_blocker
from app.planner.dates import LATE_GRACE
from app.planner.learned import PastOrder, latest_gap
from app.planner.planner import (
    ANCHOR_KEY,
    NO_HISTORY,
    History,
    PlannedMessage,
    delivery_fallback_keys,
    event_rules,
    matching_items,
    order_dedupe_key,
    plan_order_event,
    settle_delivery,
)
from app.rules.facts import CustomerFacts, OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.stats.attribution import AttributionPolicy
from app.stats.service import record_conversion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Known:
    """What this delivery has just written, so that planning need not read it back."""

    customer: Customer
    # Created by this delivery: no other order of theirs exists yet.
    new_customer: bool = False
    # The order's items as just stored (None: read them).
    items: Sequence[OrderItem] | None = None


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
    attribution: AttributionPolicy | None,
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
        attribution=attribution,
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
    attribution: AttributionPolicy | None,
) -> IntakeResult:
    """Apply the event of a delivery already recorded (row id `delivery`).

    `attribution`: how orders are credited to the mail before them (docs/stats.md); None
    records no conversions.
    """
    if await _about_the_erased(session, shop=shop, event=event):
        # Erasure stays done: nothing of it is stored (its raw body neither), nothing planned.
        await repository.blank_delivery(session, delivery=delivery)
        log.info("%s %s is about an erased customer: ignored", event.type, event.id)
        return IntakeResult(status="ignored", event_id=event.id)
    result = IntakeResult(status="accepted", event_id=event.id)
    customer_id: int | None = None  # whose data the delivery carries, when already known
    if isinstance(event, OrderPlaced):
        result.messages_planned, customer_id = await _order_placed(
            session,
            shop=shop,
            event=event,
            rules=rules,
            default_tz=default_time_zone,
            plan_messages=plan_messages,
            attribution=attribution,
        )
    elif isinstance(event, OrderFulfilled):
        result.messages_planned = await _order_fulfilled(
            session,
            shop=shop,
            event=event,
            rules=rules,
            default_tz=default_time_zone,
            plan_messages=plan_messages,
        )
    elif isinstance(event, OrderClosed):
        result.messages_cancelled = await _order_closed(
            session, shop=shop, event=event, rules=rules
        )
    elif isinstance(event, CustomerUpdated):
        stored, _ = await _upsert_customer(
            session, shop=shop, customer=event.customer, as_of=event.occurred_at
        )
        customer_id = stored.id
    elif isinstance(event, CustomerDeleted):
        result.messages_cancelled = await _customer_deleted(
            session, shop=shop, event=event, now=now
        )
    if customer_id is None:
        customer_id = await _whose(session, shop=shop, event=event)
    if customer_id is not None:
        await repository.link_delivery(session, delivery_id=delivery, customer_id=customer_id)
    return result


async def _about_the_erased(session: AsyncSession, *, shop: str, event: Envelope) -> bool:
    """Whether the event is about someone erased and must change nothing: an order placed
    before their erasure, any update of them as a customer, anything about their orders.
    Only a new order placed after the erasure brings the person back, as a new customer."""
    if isinstance(event, CustomerDeleted):
        return False  # erasing again changes nothing anyway
    customer = getattr(event, "customer", None)
    if customer is not None:
        erased = await erased_at(
            session,
            shop=shop,
            external_ids=[customer.id],
            emails=[customer.email] if getattr(customer, "email", None) else [],
        )
        if erased is None:
            return False
        return not isinstance(event, OrderPlaced) or event.occurred_at <= erased
    order = getattr(event, "order", None)
    if order is not None:
        return await repository.order_of_erased_customer(session, shop=shop, external_id=order.id)
    return False


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


async def _order_placed(
    session: AsyncSession,
    *,
    shop: str,
    event: OrderPlaced,
    rules: RuleSet,
    default_tz: str,
    plan_messages: bool,
    attribution: AttributionPolicy | None,
) -> tuple[int, int]:
    """Messages planned, and the customer's id."""
    customer, new_customer = await _upsert_customer(
        session, shop=shop, customer=event.customer, as_of=event.occurred_at
    )
    customer_id = customer.id
    incoming = event.order
    order, new_order = await repository.upsert_order(
        session,
        shop=shop,
        external_id=incoming.id,
        values={
            "customer_id": customer_id,
            "email": incoming.email or event.customer.email,
            "currency": incoming.currency,
            "total": incoming.total,
            "placed_at": incoming.created_at,
            "discount_codes": list(incoming.discount_codes),
            "number": incoming.number,
            "attributes": incoming.attributes,
        },
    )
    items = None
    # A new order has no items yet; one that existed may have them from an earlier event.
    if new_order or not await repository.order_has_items(session, order.id):
        # Each item's catalog product, so rules see its categories, type, vendor and tags.
        found = await find_products_for_items(
            session,
            shop=shop,
            items=[(item.product_id, item.variant_id, item.sku) for item in incoming.items],
        )
        items = await repository.add_items(
            session,
            order.id,
            [_item_row(item, match) for item, match in zip(incoming.items, found, strict=True)],
            [match.product if match else None for match in found],
        )
        if order.refunds and fully_refunded(incoming.items, order.refunds):
            # Refunds that came first took every item: the order stands refunded.
            order.status = OrderStatus.REFUNDED
            order.refunded_at = max(datetime.fromisoformat(r["at"]) for r in order.refunds)
            await session.flush()
    # Codes our mail carried that this order used are linked to it (coupon attribution).
    await redeem_order_codes(session, order=order, codes=incoming.discount_codes)
    if attribution is not None:
        # Stats: credit the order to the mail that brought it, if any (once per order).
        await record_conversion(
            session,
            order=order,
            policy=attribution,
            new_order=new_order,
            new_customer=new_customer,
        )
    known = _Known(customer=customer, new_customer=new_customer, items=items)
    planned = await _plan(
        session,
        event_type=event.type,
        occurred_at=event.occurred_at,
        order=order,
        customer_id=customer_id,
        rules=rules,
        default_tz=default_tz,
        plan_messages=plan_messages,
        known=known,
    )
    # A fulfilment or delivery that came first waited for the order: plan its messages now.
    for later, at in (
        ("order.fulfilled", order.fulfilled_at),
        ("order.delivered", order.delivered_at),
    ):
        if at is not None:
            planned += await _plan(
                session,
                event_type=later,
                occurred_at=at,
                order=order,
                customer_id=customer_id,
                rules=rules,
                default_tz=default_tz,
                plan_messages=plan_messages,
                known=known,
            )
    return planned, customer_id


def _item_row(item: ItemIn, match: ProductMatch | None) -> dict[str, Any]:
    """An item's columns: the platform's ids are its product_ref and variant_ref; `match`
    its catalog product, if the catalog has it."""
    row = item.model_dump(mode="python", exclude={"product_id", "variant_id"})
    row["product_ref"] = item.product_id
    row["variant_ref"] = item.variant_id
    row["catalog_product_id"] = match.product.id if match else None
    row["catalog_variant_id"] = match.variant.id if match and match.variant else None
    return row


async def _order_fulfilled(
    session: AsyncSession,
    *,
    shop: str,
    event: OrderFulfilled,
    rules: RuleSet,
    default_tz: str,
    plan_messages: bool,
) -> int:
    """`order.fulfilled`, and `order.delivered`, which is a fulfilment too when none came
    before it: then the fulfilment's messages are planned as well."""
    order = await repository.ensure_order(session, shop=shop, external_id=event.order.id)
    if order.status == OrderStatus.OPEN:
        order.status = OrderStatus.FULFILLED
    events = []
    if order.fulfilled_at is None or event.type == "order.fulfilled":
        events.append("order.fulfilled")
    order.fulfilled_at = order.fulfilled_at or event.occurred_at
    if event.type == "order.delivered":
        events.append("order.delivered")
        order.delivered_at = order.delivered_at or event.occurred_at
    customer_id = order.customer_id
    if event.customer is not None:
        stored, _ = await _upsert_customer(
            session, shop=shop, customer=event.customer, as_of=event.occurred_at
        )
        customer_id = stored.id
        order.customer_id = order.customer_id or customer_id
    await session.flush()
    if customer_id is None or order.placed_at is None:
        # Fulfilment of an order we have not seen yet: its items and history are unknown.
        # The order, when it comes, plans the fulfilment's messages too.
        return 0
    planned = 0
    for event_type in events:
        # Each from its own time: a late or repeated report moves nothing.
        at = order.delivered_at if event_type == "order.delivered" else order.fulfilled_at
        assert at is not None
        planned += await _plan(
            session,
            event_type=event_type,
            occurred_at=at,
            order=order,
            customer_id=customer_id,
            rules=rules,
            default_tz=default_tz,
            plan_messages=plan_messages,
        )
    return planned


async def _order_closed(
    session: AsyncSession, *, shop: str, event: OrderClosed, rules: RuleSet
) -> int:
    order = await repository.ensure_order(session, shop=shop, external_id=event.order.id)
    if event.type == "order.refunded" and event.items:
        # A new list, not an in-place append: the JSON column must see the change.
        at = event.occurred_at.isoformat()
        order.refunds = [*order.refunds, *({**item.model_dump(), "at": at} for item in event.items)]
        items = await repository.order_items(session, order.id)
        if not fully_refunded(items, order.refunds):
            await session.flush()
            return await _cancel_refunded(session, order=order, items=items, rules=rules)
        # Nothing of the order is left: a full refund.
    if event.type == "order.cancelled":
        order.status = OrderStatus.CANCELLED
        order.cancelled_at = order.cancelled_at or event.occurred_at
    else:
        order.status = OrderStatus.REFUNDED
        order.refunded_at = order.refunded_at or event.occurred_at
    await session.flush()
    return await outbox.cancel_pending(session, order_id=order.id, reason=f"order_{order.status}")


async def _cancel_refunded(
    session: AsyncSession,
    *,
    order: Order,
    items: Sequence[OrderItem],
    rules: RuleSet,
) -> int:
    """Cancel the waiting messages whose items were all refunded; the rest still stand."""
    pending = await outbox.pending_messages(session, order_id=order.id)
    moot_rules = refunded_rule_ids(
        (rule_id for _, rule_id in pending),
        rules=rules,
        items=[item.facts() for item in items],
        refunds=order.refunds,
    )
    moot = [message_id for message_id, rule_id in pending if rule_id in moot_rules]
    return await outbox.cancel_pending(session, ids=moot, reason="order_refunded")


async def _customer_deleted(
    session: AsyncSession, *, shop: str, event: CustomerDeleted, now: datetime
) -> int:
    ids = set()
    customer_id = await repository.customer_id_for(
        session, shop=shop, external_id=event.customer.id
    )
    if customer_id is not None:
        ids.add(customer_id)
    if event.customer.email:
        ids.update(
            await repository.customer_ids_by_email(session, shop=shop, email=event.customer.email)
        )
    cancelled = 0
    for erased in sorted(ids):
        cancelled += await erase_customer(session, customer_id=erased, now=now)
    if event.customer.email:
        # Also when nobody was found: the request's own body, and any other, names them.
        await repository.blank_bodies_naming(session, shop=shop, email=event.customer.email)
    return cancelled


async def _plan(
    session: AsyncSession,
    *,
    event_type: str,
    occurred_at: datetime,
    order: Order,
    customer_id: int,
    rules: RuleSet,
    default_tz: str,
    plan_messages: bool = True,
    known: _Known | None = None,
) -> int:
    """Learn the repurchase gap the order closes, then plan the event's messages from the
    stored order and customer and store them (unless `plan_messages` is off)."""
    if known is not None:
        customer = known.customer
    else:
        customer = await repository.get_customer(session, customer_id)
    facts = await _order_facts(session, order, customer_id=customer_id, known=known)
    customer_facts = _customer_facts(customer)
    matching = [
        rule
        for rule in event_rules(event_type, order=facts, rules=rules)
        if matching_items(rule, facts, customer_facts) is not None
    ]
    learned = [rule for rule in matching if rule.send.learned is not None]
    history = NO_HISTORY
    if learned or (plan_messages and any(rule.checks_rebuy for rule in matching)):
        history = History(
            orders=[]
            if known is not None and known.new_customer
            else await repository.past_orders(
                session, customer_id=customer_id, before_order_id=order.id
            ),
            product_gaps=await repository.product_gap_stats(session, [r.id for r in learned]),
        )
    # From the history read above, so this order's own gap does not move its own plan.
    await _learn_gaps(
        session, order=order, facts=facts, customer_id=customer_id, rules=learned, history=history
    )
    if not plan_messages:
        return 0
    planned = plan_order_event(
        event=event_type,
        occurred_at=occurred_at,
        order=facts,
        customer_id=customer_id,
        rules=rules,
        tz=ZoneInfo(customer.time_zone or default_tz),
        customer=customer_facts,
        history=history,
    )
    # Planned from the order as placed, as it would have been before the refund came.
    planned = without_refunded(planned, rules=rules, items=facts.items, refunds=order.refunds)
    planned = await _checked_now(
        session,
        planned,
        rules=rules,
        customer=customer,
        facts=facts,
        history=history,
        now=occurred_at,
    )
    replaced: list[str] = []
    if event_type == "order.delivered":
        fallbacks = delivery_fallback_keys(planned)
        decided = await outbox.decided_keys(session, fallbacks) if fallbacks else set()
        planned, replaced = settle_delivery(planned, decided=decided)
    created = await outbox.insert_planned(
        session, planned, customer_id=customer_id, order_id=order.id
    )
    # The delivery came: its messages replace the fallbacks planned from the fulfilment.
    await outbox.cancel_pending(session, dedupe_keys=replaced, reason="delivered")
    return created


async def plan_order_again(
    session: AsyncSession, *, order: Order, rules: RuleSet, default_tz: str
) -> int:
    """Plan what has happened to the order again from its items as they are now (their
    products arrived late: `late.py`). Rules that now match plan their messages; what was
    planned before keeps its dedupe key, so nothing is planned twice. A cancelled or
    refunded order, or an erased customer's, plans nothing."""
    if (
        order.customer_id is None
        or order.placed_at is None
        or order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
    ):
        return 0
    customer = await repository.get_customer(session, order.customer_id)
    if customer.deleted_at is not None:
        return 0
    known = _Known(customer=customer)
    planned = 0
    for event_type, at in (
        ("order.created", order.placed_at),
        ("order.fulfilled", order.fulfilled_at),
        ("order.delivered", order.delivered_at),
    ):
        if at is not None:
            planned += await _plan(
                session,
                event_type=event_type,
                occurred_at=at,
                order=order,
                customer_id=customer.id,
                rules=rules,
                default_tz=default_tz,
                known=known,
            )
    return planned


async def _learn_gaps(
    session: AsyncSession,
    *,
    order: Order,
    facts: OrderFacts,
    customer_id: int,
    rules: Sequence[Rule],
    history: History,
) -> None:
    """Record the repurchase gap this order closes for each learned rule it matches."""
    if facts.placed_at is None or order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
        return
    this = PastOrder(placed_at=facts.placed_at, items=facts.items)
    for rule in rules:
        gap = latest_gap(rule, history.orders, this)
        if gap is not None:
            await repository.record_gap(
                session,
                rule_id=rule.id,
                customer_id=customer_id,
                order_id=order.id,
                log_days=gap,
                observed_at=facts.placed_at,
            )


def _customer_facts(customer: Customer) -> CustomerFacts:
    return CustomerFacts(
        birthday=customer.birthday,
        attributes=customer.attributes,
        locale=customer.locale,
        country=customer.country,
        tags=tuple(customer.tags),
        key=f"{customer.shop}:{customer.external_id}",
    )


async def replan_anchors(
    session: AsyncSession, *, customer_id: int, rules: RuleSet, now: datetime, default_tz: str
) -> int:
    """Plan date-anchored messages from the customer's data as it is now.

    Order-time planning used the dates known then; a child's birth date added later is
    picked up here. Idempotent (one message per rule, order and date), and a rule's
    no-date fallback is cancelled once a date is known.
    """
    anchored = RuleSet(
        rules=tuple(rule for rule in rules.rules if rule.send.anchor is not None),
        version=rules.version,
    )
    if not anchored.rules:
        return 0
    customer = await repository.get_customer(session, customer_id)
    if customer.deleted_at is not None:
        return 0
    created = 0
    for order in await repository.standing_orders(session, customer_id=customer_id):
        facts = await _order_facts(session, order, customer_id=customer_id)
        for event, at in (
            ("order.created", order.placed_at),
            ("order.fulfilled", order.fulfilled_at),
        ):
            if at is None:
                continue
            planned = plan_order_event(
                event=event,
                occurred_at=at,
                order=facts,
                customer_id=customer_id,
                rules=anchored,
                tz=ZoneInfo(customer.time_zone or default_tz),
                customer=_customer_facts(customer),
            )
            dated = [
                plan
                for plan in planned
                if ANCHOR_KEY in plan.dedupe_key and plan.send_at >= now - LATE_GRACE
            ]
            if not dated:
                continue
            created += await outbox.insert_planned(
                session, dated, customer_id=customer_id, order_id=order.id
            )
            await outbox.cancel_pending(
                session,
                dedupe_keys=[
                    order_dedupe_key(rule_id, order_id=order.id, customer_id=customer_id)
                    for rule_id in {plan.rule_id for plan in dated}
                ],
                reason="anchor_date_known",
            )
    return created


async def _checked_now(
    session: AsyncSession,
    planned: list[PlannedMessage],
    *,
    rules: RuleSet,
    customer: Customer,
    facts: OrderFacts,
    history: History,
    now: datetime,
) -> list[PlannedMessage]:
    """The send-time checks, run once already while planning: a message that could not be
    sent now (no consent, suppressed, already rebought: e.g. an order imported or delivered
    late) is stored as skipped with its reason, not left to look sendable until it falls due.
    """
    if not any(plan.status == MessageStatus.SCHEDULED for plan in planned):
        return planned
    suppressed = customer.email is not None and await repository.is_suppressed(
        session, customer.email
    )
    later = [
        Purchase.of(item)
        for past in history.orders
        if facts.placed_at is not None and past.placed_at > facts.placed_at
        for item in past.items
    ]
    checked = []
    for plan in planned:
        rule = rules.by_id(plan.rule_id)
        if plan.status != MessageStatus.SCHEDULED or rule is None:
            checked.append(plan)
            continue
        matched = matching_items(rule, facts) or []
        blocker = send_blocker(
            SendFacts(
                kind=plan.kind,
                expires_at=None,
                customer_deleted=customer.deleted_at is not None,
                email=customer.email,
                marketing_consent=customer.marketing_consent,
                suppressed=suppressed,
                order_status=facts.status,
                skip_if=tuple(rule.skip_if),
                purchased=[Purchase.of(item) for item in matched],
                bought_since=later,
            ),
            now=now,
        )
        if blocker is not None:
            plan = replace(plan, status=blocker[0], reason=blocker[1])
        checked.append(plan)
    return checked


async def _order_facts(
    session: AsyncSession, order: Order, *, customer_id: int, known: _Known | None = None
) -> OrderFacts:
    stored = known.items if known is not None else None
    if stored is None:
        stored = await repository.order_items(session, order.id)
    items = [row.facts() for row in stored]
    if known is not None and known.new_customer:
        earlier = 0  # this order is their only one
    else:
        earlier = await repository.count_earlier_orders(
            session, customer_id=customer_id, order_id=order.id, placed_at=order.placed_at
        )
    return OrderFacts(
        id=order.id,
        status=order.status,
        placed_at=order.placed_at,
        items=tuple(items),
        total=order.total,
        currency=order.currency,
        first_order=earlier == 0,
        delivered_at=order.delivered_at,
    )


async def _upsert_customer(
    session: AsyncSession, *, shop: str, customer: CustomerIn, as_of: datetime
) -> tuple[Customer, bool]:
    """The customer as stored, and whether this event created them."""
    # Only what the event carries: a customer update without a locale or consent field (most
    # platform payloads) must not wipe what an earlier event told us.
    values: dict[str, Any] = customer.model_dump(mode="python", exclude={"id"}, exclude_unset=True)
    values["email"] = str(customer.email).lower() if customer.email else None
    stored, created = await repository.upsert_customer(
        session, shop=shop, external_id=customer.id, values=values, as_of=as_of
    )
    if not stored.marketing_consent and not created:
        # Withdrawn (or never given): waiting marketing mail stops now, as it would have been
        # skipped had it been planned after this; the same whatever order events arrive in.
        # (A customer created just now has no mail waiting.)
        await outbox.skip_pending_marketing(session, customer_id=stored.id)
    return stored, created
