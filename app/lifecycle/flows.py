"""What each event does to the lifecycle, written once for the service and for `simulate`.

An order plans its messages (rules, anchors, learned timing, the send-time checks run once
already) and ends the customer's waiting lapse; a new customer gets its welcome
(`customer.created`); a fulfilment or delivery plans theirs; a refund or cancellation
cancels what it makes moot; a customer who withdraws consent stops their waiting marketing
mail; a changed date re-plans date-anchored messages. Every read and write goes through a
`LifecycleStore`: the SQL one in the service's transaction, the memory one in a replay. The
decisions are the pure functions of app/planner, app/lifecycle/refunds.py and
app/lifecycle/checks.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.events import (
    CustomerDeleted,
    CustomerIn,
    CustomerUpdated,
    Envelope,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
)
from app.lifecycle.checks import Purchase, SendFacts, send_blocker
from app.lifecycle.refunds import fully_refunded, refunded_rule_ids, without_refunded
from app.lifecycle.store import CustomerState, LifecycleStore, OrderState, Upserted
from app.planner.customers import (
    CREATED,
    LAPSE_ORDERS,
    LAPSED,
    lapse_key,
    plan_customer_created,
)
from app.planner.dates import LATE_GRACE
from app.planner.learned import PastOrder, latest_gap
from app.planner.planner import (
    ANCHOR_KEY,
    NO_HISTORY,
    History,
    PlannedMessage,
    delivery_fallback_keys,
    event_rules,
    first_step_key,
    matching_items,
    order_dedupe_key,
    plan_order_event,
    planned_message,
    settle_delivery,
)
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import REVIEW_ANSWERED, Rule
from app.rules.timing import send_time
from app.statuses import MessageStatus, OrderStatus

CLOSED = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)


@dataclass
class Applied:
    """What an event did: messages planned and cancelled, and whose data it carried."""

    planned: int = 0
    cancelled: int = 0
    customer_id: int | None = None


async def apply_event(
    store: LifecycleStore,
    event: Envelope,
    *,
    rules: RuleSet,
    now: datetime,
    plan_messages: bool = True,
) -> Applied:
    """Apply one event. `plan_messages=False` (history import) stores customers, orders and
    items and learns repurchase gaps, but plans no message: the past must not be mailed."""
    if isinstance(event, OrderPlaced):
        return await order_placed(store, event, rules=rules, plan_messages=plan_messages)
    if isinstance(event, OrderFulfilled):
        return await order_fulfilled(store, event, rules=rules, plan_messages=plan_messages)
    if isinstance(event, OrderClosed):
        return Applied(cancelled=await order_closed(store, event, rules=rules))
    if isinstance(event, CustomerUpdated):
        upserted, planned = await upsert_customer(
            store, event.customer, as_of=event.occurred_at, rules=rules, plan_messages=plan_messages
        )
        return Applied(planned=planned, customer_id=upserted.customer.id)
    if isinstance(event, CustomerDeleted):
        return Applied(cancelled=await store.erase_customer(event.customer, now=now))
    return Applied()


async def upsert_customer(
    store: LifecycleStore,
    incoming: CustomerIn,
    *,
    as_of: datetime,
    rules: RuleSet,
    plan_messages: bool = True,
    welcome_later: bool = False,
) -> tuple[Upserted, int]:
    """Create or update the customer; a customer this event created gets its
    `customer.created` messages (from whichever event carried them first), unless
    `welcome_later` (their first order plans them once it is stored). Returns the customer
    and how many messages were planned."""
    upserted = await store.upsert_customer(incoming, as_of=as_of)
    if not upserted.customer.marketing_consent and not upserted.created:
        # Withdrawn (or never given): waiting marketing mail stops now, as it would have been
        # skipped had it been planned after this; the same whatever order events arrive in.
        # (A customer created just now has no mail waiting.)
        await store.skip_waiting_marketing(upserted.customer)
    planned = 0
    if upserted.created and plan_messages and not welcome_later and rules.for_event(CREATED):
        planned = await _customer_created(store, upserted.customer, at=as_of, rules=rules)
    return upserted, planned


async def _customer_created(
    store: LifecycleStore,
    customer: CustomerState,
    *,
    at: datetime,
    rules: RuleSet,
    orders: int = 0,
) -> int:
    """Plan the welcome (`customer.created` rules), with the checks that can already stop it
    (consent, suppression) run now, as for an order's messages. `orders`: the new
    customer's standing orders (1 when their first order made them)."""
    planned = plan_customer_created(
        rules=rules,
        customer_id=customer.id,
        at=at,
        tz=customer.tz,
        customer=customer.facts,
        orders=orders,
    )
    planned = await _checked_for_customer(store, planned, customer=customer, now=at)
    return await store.insert_planned(planned, customer_id=customer.id, order_id=None)


async def _checked_for_customer(
    store: LifecycleStore,
    planned: list[PlannedMessage],
    *,
    customer: CustomerState,
    now: datetime,
) -> list[PlannedMessage]:
    """The checks that can already stop a message about the customer alone (no order):
    deleted, no address, suppressed, no consent. As `_checked_now` does for an order's."""
    if not any(plan.status == MessageStatus.SCHEDULED for plan in planned):
        return planned
    suppressed = customer.email is not None and await store.is_suppressed(customer.email)
    checked = []
    for plan in planned:
        blocker = None
        if plan.status == MessageStatus.SCHEDULED:
            blocker = send_blocker(
                SendFacts(
                    kind=plan.kind,
                    expires_at=None,
                    customer_deleted=customer.deleted,
                    email=customer.email,
                    marketing_consent=customer.marketing_consent,
                    suppressed=suppressed,
                    order_status=None,
                ),
                now=now,
            )
        checked.append(
            plan if blocker is None else replace(plan, status=blocker[0], reason=blocker[1])
        )
    return checked


async def _cancel_lapses(
    store: LifecycleStore, order: OrderState, customer: CustomerState, *, rules: RuleSet
) -> int:
    """A new order ends the lapse that waited for an earlier last order (`ordered_again`):
    the customer came back, and their next lapse counts from this order."""
    lapse_rules = rules.for_event(LAPSED)
    placed = order.placed_at
    if not lapse_rules or placed is None or order.status in CLOSED:
        return 0
    earlier = [
        other
        for other in await store.standing_orders(customer)
        if other.id != order.id and other.placed_at is not None and other.placed_at < placed
    ]
    # A lapse is planned after the customer's latest order: the latest few are enough.
    keys = [
        lapse_key(rule.id, customer_id=customer.id, last_order_id=other.id)
        for other in earlier[-LAPSE_ORDERS:]
        for rule in lapse_rules
    ]
    return await store.cancel_waiting(reason="ordered_again", dedupe_keys=keys) if keys else 0


async def order_placed(
    store: LifecycleStore, event: OrderPlaced, *, rules: RuleSet, plan_messages: bool
) -> Applied:
    upserted, planned = await upsert_customer(
        store,
        event.customer,
        as_of=event.occurred_at,
        rules=rules,
        plan_messages=plan_messages,
        welcome_later=True,
    )
    customer = upserted.customer
    incoming = event.order
    order, new_order = await store.place_order(
        incoming, customer=customer, email=incoming.email or event.customer.email
    )
    # A new order has no items yet; one that existed may have them from an earlier event.
    if new_order or not await store.has_items(order):
        await store.add_items(order, incoming.items)
        if order.refunds and fully_refunded(incoming.items, order.refunds):
            # Refunds that came first took every item: the order stands refunded.
            order = await store.close_order(order, OrderStatus.REFUNDED, at=_last_refund(order))
    await store.order_stored(order, incoming, new_order=new_order, new_customer=upserted.created)
    if upserted.created and plan_messages and rules.for_event(CREATED):
        # Made by this order, their only one: it counts for the welcome's `if: {orders}`.
        stands = order.placed_at is not None and order.status not in CLOSED
        planned += await _customer_created(
            store, customer, at=event.occurred_at, rules=rules, orders=1 if stands else 0
        )
    cancelled = 0
    if not upserted.created:  # a new customer has no lapse waiting
        cancelled = await _cancel_lapses(store, order, customer, rules=rules)
    planned += await plan_event(
        store,
        "order.created",
        at=event.occurred_at,
        order=order,
        customer=customer,
        rules=rules,
        plan_messages=plan_messages,
    )
    # A fulfilment or delivery that came first waited for the order: plan its messages now.
    for later, at in (
        ("order.fulfilled", order.fulfilled_at),
        ("order.delivered", order.delivered_at),
    ):
        if at is not None:
            planned += await plan_event(
                store,
                later,
                at=at,
                order=order,
                customer=customer,
                rules=rules,
                plan_messages=plan_messages,
            )
    return Applied(planned=planned, cancelled=cancelled, customer_id=customer.id)


def _last_refund(order: OrderState) -> datetime | None:
    times = [refund["at"] for refund in order.refunds if isinstance(refund.get("at"), str)]
    return max(datetime.fromisoformat(str(at)) for at in times) if times else None


async def order_fulfilled(
    store: LifecycleStore, event: OrderFulfilled, *, rules: RuleSet, plan_messages: bool
) -> Applied:
    """`order.fulfilled`, and `order.delivered`, which is a fulfilment too when none came
    before it: then the fulfilment's messages are planned as well."""
    order = await store.order(event.order.id)
    changes: dict[str, object] = {}
    if order.status == OrderStatus.OPEN:
        changes["status"] = OrderStatus.FULFILLED
    events = []
    if order.fulfilled_at is None or event.type == "order.fulfilled":
        events.append("order.fulfilled")
    changes["fulfilled_at"] = order.fulfilled_at or event.occurred_at
    if event.type == "order.delivered":
        events.append("order.delivered")
        changes["delivered_at"] = order.delivered_at or event.occurred_at
    customer: CustomerState | None = None
    welcomed = 0
    if event.customer is not None:
        upserted, welcomed = await upsert_customer(
            store, event.customer, as_of=event.occurred_at, rules=rules, plan_messages=plan_messages
        )
        customer = upserted.customer
        if order.customer_id is None:
            changes["customer_id"] = customer.id
    order = await store.update_order(order, **changes)
    if customer is None and order.customer_id is not None:
        customer = await store.customer(order.customer_id)
    if customer is None or order.placed_at is None:
        # Fulfilment of an order we have not seen yet: its items and history are unknown.
        # The order, when it comes, plans the fulfilment's messages too.
        return Applied(planned=welcomed)
    planned = welcomed
    for event_type in events:
        # Each from its own time: a late or repeated report moves nothing.
        at = order.delivered_at if event_type == "order.delivered" else order.fulfilled_at
        assert at is not None
        planned += await plan_event(
            store,
            event_type,
            at=at,
            order=order,
            customer=customer,
            rules=rules,
            plan_messages=plan_messages,
        )
    return Applied(planned=planned)


async def order_closed(store: LifecycleStore, event: OrderClosed, *, rules: RuleSet) -> int:
    """A cancellation or full refund cancels the order's waiting mail; a refund of some
    items cancels only the messages about them, unless nothing of the order is left."""
    order = await store.order(event.order.id)
    if event.type == "order.refunded" and event.items:
        at = event.occurred_at.isoformat()
        refunds = [*order.refunds, *({**item.model_dump(), "at": at} for item in event.items)]
        order = await store.update_order(order, refunds=refunds)
        items = await store.items(order)
        if not fully_refunded(items, refunds):
            waiting = await store.waiting(order)
            moot = refunded_rule_ids(
                (rule_id for _, rule_id in waiting), rules=rules, items=items, refunds=refunds
            )
            ids = [message_id for message_id, rule_id in waiting if rule_id in moot]
            return await store.cancel_waiting(reason="order_refunded", ids=ids)
        # Nothing of the order is left: a full refund.
    status = OrderStatus.CANCELLED if event.type == "order.cancelled" else OrderStatus.REFUNDED
    order = await store.close_order(order, status, at=event.occurred_at)
    return await store.cancel_waiting(reason=f"order_{status}", order=order)


async def order_facts(
    store: LifecycleStore, order: OrderState, customer: CustomerState
) -> OrderFacts:
    return OrderFacts(
        id=order.id,
        status=order.status,
        placed_at=order.placed_at,
        items=await store.items(order),
        total=order.total,
        currency=order.currency,
        first_order=await store.is_first_order(order, customer),
        delivered_at=order.delivered_at,
    )


async def plan_event(
    store: LifecycleStore,
    event_type: str,
    *,
    at: datetime,
    order: OrderState,
    customer: CustomerState,
    rules: RuleSet,
    plan_messages: bool = True,
) -> int:
    """Learn the repurchase gap the order closes, then plan the event's messages from the
    order and customer as they are and store them (unless `plan_messages` is off)."""
    if not rules.for_event(event_type) and not (
        event_type == "order.fulfilled"
        and order.delivered_at is None
        and rules.for_event("order.delivered")
    ):
        return 0  # no rule plans from this event: nothing to read, learn or store
    facts = await order_facts(store, order, customer)
    if event_type in rules.reading_totals:
        # Some rule matches on the customer's order count or spending: read them (once).
        count, spent = await store.customer_totals(customer)
        customer = replace(customer, facts=replace(customer.facts, orders=count, spent=spent))
    # Only these rules' match decides what history to read (the others' would change nothing).
    matching = [
        rule
        for rule in event_rules(event_type, order=facts, rules=rules.reading_history)
        if matching_items(rule, facts, customer.facts) is not None
    ]
    learned = [rule for rule in matching if rule.send.learned is not None]
    history = NO_HISTORY
    if learned or (
        plan_messages
        and any(rule.checks_rebuy or rule.when.first_in_category is not None for rule in matching)
    ):
        history = History(
            orders=await store.past_orders(order, customer),
            product_gaps=await store.product_gaps([rule.id for rule in learned]),
        )
    # From the history read above, so this order's own gap does not move its own plan.
    await _learn_gaps(
        store, order=order, customer=customer, facts=facts, rules=learned, history=history
    )
    if not plan_messages:
        return 0
    planned = plan_order_event(
        event=event_type,
        occurred_at=at,
        order=facts,
        customer_id=customer.id,
        rules=rules,
        tz=customer.tz,
        customer=customer.facts,
        history=history,
    )
    if order.refunds:
        # Planned from the order as placed, as it would have been before the refund came.
        planned = without_refunded(planned, rules=rules, items=facts.items, refunds=order.refunds)
    planned = await _checked_now(
        store, planned, rules=rules, customer=customer, facts=facts, history=history, now=at
    )
    replaced: list[str] = []
    if event_type == "order.delivered":
        fallbacks = delivery_fallback_keys(planned)
        decided = await store.decided_keys(fallbacks) if fallbacks else set()
        planned, replaced = settle_delivery(planned, decided=decided)
    created = await store.insert_planned(planned, customer_id=customer.id, order_id=order.id)
    if replaced:
        # The delivery came: its messages replace the fallbacks planned from the fulfilment.
        await store.cancel_waiting(reason="delivered", dedupe_keys=replaced)
    return created


async def _learn_gaps(
    store: LifecycleStore,
    *,
    order: OrderState,
    customer: CustomerState,
    facts: OrderFacts,
    rules: Sequence[Rule],
    history: History,
) -> None:
    """Record the repurchase gap this order closes for each learned rule it matches."""
    if not rules or facts.placed_at is None or order.status in CLOSED:
        return
    this = PastOrder(placed_at=facts.placed_at, items=facts.items)
    for rule in rules:
        gap = latest_gap(rule, history.orders, this)
        if gap is not None:
            await store.record_gap(
                rule.id, customer=customer, order=order, log_days=gap, observed_at=facts.placed_at
            )


async def _checked_now(
    store: LifecycleStore,
    planned: list[PlannedMessage],
    *,
    rules: RuleSet,
    customer: CustomerState,
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
    suppressed = customer.email is not None and await store.is_suppressed(customer.email)
    placed = facts.placed_at
    later = [
        Purchase.of(item)
        for past in history.orders
        if placed is not None and past.placed_at > placed
        for item in past.items
    ]
    checked = []
    for plan in planned:
        rule = rules.by_id(plan.rule_id)
        if plan.status != MessageStatus.SCHEDULED or rule is None:
            checked.append(plan)
            continue
        purchased: list[Purchase] = []
        if later and rule.checks_rebuy:  # only a rebuy check compares the items
            purchased = [Purchase.of(item) for item in matching_items(rule, facts) or []]
        blocker = send_blocker(
            SendFacts(
                kind=plan.kind,
                expires_at=None,
                customer_deleted=customer.deleted,
                email=customer.email,
                marketing_consent=customer.marketing_consent,
                suppressed=suppressed,
                order_status=facts.status,
                skip_if=tuple(rule.skip_if),
                purchased=purchased,
                bought_since=later,
            ),
            now=now,
        )
        checked.append(
            plan if blocker is None else replace(plan, status=blocker[0], reason=blocker[1])
        )
    return checked


async def plan_order_again(store: LifecycleStore, order: OrderState, *, rules: RuleSet) -> int:
    """Plan what has happened to the order again from its items as they are now (their
    products arrived late). Rules that now match plan their messages; what was planned
    before keeps its dedupe key, so nothing is planned twice. A cancelled or refunded order,
    or an erased customer's, plans nothing."""
    if order.customer_id is None or order.placed_at is None or order.status in CLOSED:
        return 0
    customer = await store.customer(order.customer_id)
    if customer.deleted:
        return 0
    planned = 0
    for event_type, at in (
        ("order.created", order.placed_at),
        ("order.fulfilled", order.fulfilled_at),
        ("order.delivered", order.delivered_at),
    ):
        if at is not None:
            planned += await plan_event(
                store, event_type, at=at, order=order, customer=customer, rules=rules
            )
    return planned


async def replan_anchors(
    store: LifecycleStore, customer_id: int, *, rules: RuleSet, now: datetime
) -> int:
    """Plan date-anchored messages from the customer's data as it is now.

    Order-time planning used the dates known then; a child's birth date added later is
    picked up here (the anchor job). Idempotent (one message per rule, order and date), and
    a rule's no-date fallback is cancelled once a date is known.
    """
    anchored = rules.anchored
    if not anchored.rules:
        return 0
    customer = await store.customer(customer_id)
    if customer.deleted:
        return 0
    created = 0
    for order in await store.standing_orders(customer):
        items = await store.items(order)
        if not any(_may_match(rule, items) for rule in anchored.rules):
            continue  # the planner would plan nothing for it
        facts = await order_facts(store, order, customer)
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
                customer_id=customer.id,
                rules=anchored,
                tz=customer.tz,
                customer=customer.facts,
            )
            dated = [
                plan
                for plan in planned
                if ANCHOR_KEY in plan.dedupe_key and plan.send_at >= now - LATE_GRACE
            ]
            if not dated:
                continue
            created += await store.insert_planned(dated, customer_id=customer.id, order_id=order.id)
            await store.cancel_waiting(
                reason="anchor_date_known",
                dedupe_keys=[
                    order_dedupe_key(rule_id, order_id=order.id, customer_id=customer.id)
                    for rule_id in {plan.rule_id for plan in dated}
                ],
            )
    return created


def _may_match(rule: Rule, items: Sequence[ItemFacts]) -> bool:
    """False when no item can match the rule's item filter: a quick, exact no."""
    item_filter = rule.when.items
    return item_filter is None or any(item_filter.matches(item) for item in items)


# -- review.answered: a product review came in (app/reviews) -----------------------------------


@dataclass(frozen=True)
class ReviewAnswered:
    """A person's product review as it stands now (stars 1-5)."""

    review_id: int
    customer_id: int
    order_id: int | None
    stars: int
    answered_at: datetime
    # A person's (counted, plans follow-ups), or a machine's (cancels what it planned).
    human: bool = True


def review_key(rule_id: str, review_id: int) -> str:
    """One message per review.answered rule and review, whatever repeats."""
    return f"{rule_id}:review:{review_id}"


def answered_review_id(rule_id: str, dedupe_key: str) -> int | None:
    """The review a message of a review.answered rule follows up (`review_key`, any step);
    None for any other message."""
    head, marker, tail = first_step_key(dedupe_key).rpartition(":review:")
    return int(tail) if marker and head == rule_id and tail.isdigit() else None


async def review_answered(
    store: LifecycleStore,
    answer: ReviewAnswered,
    *,
    rules: RuleSet,
    hold: timedelta = timedelta(0),
) -> int:
    """Plan the review.answered rules whose `if` the review meets (from the answer, but not
    before `hold`, the burst window in which a scanner is still told apart), and cancel a
    waiting one whose `if` it meets no more (the customer changed their stars)."""
    found = rules.for_event(REVIEW_ANSWERED)
    if not found:
        return 0
    customer = await store.customer(answer.customer_id)
    if customer.deleted:
        return 0
    planned, moot = [], []
    for rule in found:
        key = review_key(rule.id, answer.review_id)
        stars = rule.if_.stars if rule.if_ is not None else None
        if (stars is not None and not stars.matches(answer.stars)) or (
            rule.when.customer is not None and not rule.when.customer.matches(customer.facts)
        ):
            moot.append(key)
            continue
        due = send_time(rule, anchor=answer.answered_at, items=(), tz=customer.tz)
        planned.append(
            planned_message(
                rule,
                send_at=max(due, answer.answered_at + hold),
                dedupe_key=key,
                customer_key=customer.facts.key or str(customer.id),
                event_at=answer.answered_at,
            )
        )
    if moot:
        await store.cancel_waiting(reason="review_changed", dedupe_keys=moot)
    if not planned:
        return 0
    checked = await _checked_for_customer(store, planned, customer=customer, now=answer.answered_at)
    return await store.insert_planned(checked, customer_id=customer.id, order_id=answer.order_id)


async def review_discarded(store: LifecycleStore, review_id: int, *, rules: RuleSet) -> int:
    """The review was a scanner's after all: its waiting follow-ups do not go."""
    keys = [review_key(rule.id, review_id) for rule in rules.for_event(REVIEW_ANSWERED)]
    return await store.cancel_waiting(reason="survey_burst", dedupe_keys=keys) if keys else 0
