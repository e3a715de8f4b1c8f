"""Events + rules -> planned messages. Pure: no I/O, no clock, so it is tested directly."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from app.planner.assign import assign
from app.planner.learned import GapStats, PastOrder, learned_due, own_log_gaps, purchases
from app.rules.anchors import anchor_dates
from app.rules.categories import same_need
from app.rules.facts import CustomerFacts, ItemFacts, OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import DELIVERED, Rule
from app.rules.timing import (
    dated_send_time,
    fallback_send_time,
    localise,
    range_position,
    send_time,
)
from app.rules.windows import next_send_time
from app.statuses import MessageStatus, OrderStatus

UTC_ZONE = ZoneInfo("UTC")
# Marks the dedupe key of a message planned from an anchor date (one per date).
ANCHOR_KEY = ":anchor:"
# Ends the dedupe key of an order.delivered rule's message planned from the delivery; the
# key without it is its fallback's, planned from the fulfilment.
DELIVERED_KEY = ":delivered"
# A per-item review request: the order's key, then this and the item's position.
ITEM_KEY = ":item:"
# Step k >= 2 of a sequence: the first step's dedupe key, then this and k.
STEP_KEY = ":step:"


@dataclass(frozen=True)
class PlannedMessage:
    rule_id: str
    rule_version: str
    template: str
    kind: str
    send_at: datetime
    expires_at: datetime | None
    dedupe_key: str
    status: MessageStatus
    reason: str | None
    variant: str | None = None
    priority: int = 50
    # Its place in the rule's sequence (1: the rule's own message; 2...: its `steps`), and
    # when the sequence's event happened (what `from: event` and `exit` count from).
    step: int = 1
    event_at: datetime | None = None


@dataclass(frozen=True)
class History:
    """What the planner knows of the past: the customer's earlier orders, and each learned
    rule's observed repurchase gaps across all customers."""

    orders: Sequence[PastOrder] = ()
    product_gaps: Mapping[str, GapStats] = field(default_factory=dict)


NO_HISTORY = History()


def plan_order_event(
    *,
    event: str,
    occurred_at: datetime,
    order: OrderFacts,
    customer_id: int,
    rules: RuleSet,
    tz: ZoneInfo = UTC_ZONE,
    customer: CustomerFacts | None = None,
    history: History = NO_HISTORY,
) -> list[PlannedMessage]:
    """Plan one message per rule that the order event matches.

    Delays count from when the order was placed (for `order.created`) or from the event
    itself, so a webhook retried hours later still lands at the intended time.
    """
    anchor = order.placed_at if event == "order.created" and order.placed_at else occurred_at
    customer_key = customer.key if customer and customer.key else str(customer_id)
    planned = []
    for rule in event_rules(event, order=order, rules=rules):
        items = matching_items(rule, order, customer)
        if items is not None and rule.when.first_in_category is not None:
            items = _by_category_news(
                items, rule.when.first_in_category, history=history, before=anchor
            )
        if items is None:
            continue
        order_key = order_dedupe_key(rule.id, order_id=order.id, customer_id=customer_id)
        # A variant may have its own delay (an A/B test of timing).
        timed = rule.timed_for(assign(rule, customer_key).variant) if rule.variants else rule
        for key in review_item_keys(rule, order_key, items=items, order=order):
            planned += _plan_rule(
                rule,
                timed,
                event=event,
                anchor=anchor,
                items=items,
                tz=tz,
                customer=customer,
                customer_key=customer_key,
                key=key,
                history=history,
                order=order,
            )
    return planned


def _plan_rule(
    rule: Rule,
    timed: Rule,
    *,
    event: str,
    anchor: datetime,
    items: list[ItemFacts],
    tz: ZoneInfo,
    customer: CustomerFacts | None,
    customer_key: str,
    key: str,
    history: History,
    order: OrderFacts,
) -> list[PlannedMessage]:
    """The messages of one rule (one item of a per-item review) for an order event."""
    planned: list[PlannedMessage] = []
    if rule.when.event == DELIVERED and event != DELIVERED:
        # No delivery reported (yet): its fallback, from the fulfilment.
        times = [(fallback_send_time(rule, anchor=anchor, items=items, tz=tz), key)]
    else:
        times = _send_times(
            timed,
            anchor=anchor,
            items=items,
            tz=tz,
            customer=customer,
            key=key + DELIVERED_KEY if event == DELIVERED else key,
            history=history,
            order=order,
        )
    for send_at, dedupe_key in times:
        message = planned_message(
            rule,
            send_at=send_at,
            dedupe_key=dedupe_key,
            customer_key=customer_key,
            event_at=anchor,
        )
        # A cancellation can arrive before the order itself: plan, but never send.
        if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
            message = replace(
                message, status=MessageStatus.CANCELLED, reason=f"order_{order.status}"
            )
        planned.append(message)
        planned += held_out_steps(rule, message, tz=tz)
    return planned


def review_item_keys(
    rule: Rule, key: str, *, items: Sequence[ItemFacts], order: OrderFacts
) -> list[str]:
    """The dedupe keys of a rule's messages for an order: its one key, or with
    `review: {per: item}` one per distinct product (sku; a line without one is its own),
    marked with the position of its first line in the order (`review_item_position`)."""
    if rule.review is None or rule.review.per != "item":
        return [key]
    keys, seen = [], set()
    for position, item in enumerate(order.items):
        if not any(item is chosen for chosen in items):
            continue
        product = item.sku or f"#{position}"
        if product not in seen:
            seen.add(product)
            keys.append(f"{key}{ITEM_KEY}{position}")
    return keys


def review_item_position(dedupe_key: str) -> int | None:
    """The order position of the item a per-item review request is about; None for any
    other message."""
    _, marker, tail = first_step_key(dedupe_key).removesuffix(DELIVERED_KEY).rpartition(ITEM_KEY)
    return int(tail) if marker and tail.isdigit() else None


def _by_category_news(
    items: list[ItemFacts], new: bool, *, history: History, before: datetime
) -> list[ItemFacts] | None:
    """The items of a category the customer has not bought before (`new`), or of one they
    have; None when none is left. "coffee/beans" bought before makes "coffee/beans/arabica"
    no news, and the other way round; "coffee" and "tea" are different needs."""
    bought = {
        path
        for past in history.orders
        if past.placed_at < before
        for earlier in past.items
        for path in earlier.categories
    }
    kept = [
        item
        for item in items
        if any(same_need(path, old) for path in item.categories for old in bought) is not new
    ]
    return kept or None


def event_rules(event: str, *, order: OrderFacts, rules: RuleSet) -> Sequence[Rule]:
    """The rules an order event plans for: its own, and on fulfilment of an order not
    reported delivered, the order.delivered rules that have a fallback."""
    found = rules.for_event(event)
    if event == "order.fulfilled" and order.delivered_at is None:
        fallbacks = [rule for rule in rules.for_event(DELIVERED) if rule.send.fallback is not None]
        if fallbacks:
            return [*found, *fallbacks]
    return found


def settle_delivery(
    planned: Sequence[PlannedMessage], *, decided: Collection[str]
) -> tuple[list[PlannedMessage], list[str]]:
    """What a delivery's plans become beside the fallbacks planned at fulfilment: the plans
    to store, and the fallback keys whose waiting messages they replace (to cancel).

    `decided`: fallback keys whose message is no longer waiting (sent, skipped, ...): one
    mail per rule and order, so the delivery plans nothing more for those.
    """
    kept, replaced = [], []
    for plan in planned:
        fallback = plan.dedupe_key.removesuffix(DELIVERED_KEY)
        if fallback == plan.dedupe_key:
            kept.append(plan)
        elif fallback not in decided:
            kept.append(plan)
            replaced.append(fallback)
    return kept, replaced


def delivery_fallback_keys(planned: Sequence[PlannedMessage]) -> list[str]:
    """The fallback keys a delivery's plans would replace."""
    return [
        plan.dedupe_key.removesuffix(DELIVERED_KEY)
        for plan in planned
        if plan.dedupe_key.endswith(DELIVERED_KEY)
    ]


def _send_times(
    rule: Rule,
    *,
    anchor: datetime,
    items: list[ItemFacts],
    tz: ZoneInfo,
    customer: CustomerFacts | None,
    key: str,
    history: History,
    order: OrderFacts,
) -> list[tuple[datetime, str]]:
    """One (send time, dedupe key) per message: one per anchor date (e.g. per child)."""
    if rule.send.learned is not None:
        learned = _learned_send_time(
            rule, anchor=anchor, items=items, tz=tz, history=history, order=order
        )
        # None: too unlikely to land (`min_chance`), so no reminder at all.
        return [] if learned is None else [(learned, key)]
    if rule.send.anchor is None:
        return [(send_time(rule, anchor=anchor, items=items, tz=tz), key)]
    dates = anchor_dates(rule.send.anchor, customer=customer, items=items)
    if not dates:
        if rule.send.fallback is None:
            return []
        return [(fallback_send_time(rule, anchor=anchor, items=items, tz=tz), key)]
    times = [(dated_send_time(rule, day=day, tz=tz), f"{key}{ANCHOR_KEY}{day}") for day in dates]
    # A date already passed when the order came (the child is older) plans nothing.
    return [(send_at, dedupe_key) for send_at, dedupe_key in times if send_at >= anchor]


def _learned_send_time(
    rule: Rule,
    *,
    anchor: datetime,
    items: list[ItemFacts],
    tz: ZoneInfo,
    history: History,
    order: OrderFacts,
) -> datetime | None:
    quantity = sum(item.quantity for item in items) or 1
    now = PastOrder(placed_at=anchor, items=order.items)
    earlier = [past for past in history.orders if past.placed_at < anchor]
    due = learned_due(
        rule,
        anchor=anchor,
        quantity=quantity,
        own_log_gaps=own_log_gaps(rule, purchases(rule, earlier, now=now)),
        product=history.product_gaps.get(rule.id, GapStats()),
        position=range_position(quantity),
    )
    return None if due is None else localise(rule, due, anchor=anchor, tz=tz)


def planned_message(
    rule: Rule,
    *,
    send_at: datetime,
    dedupe_key: str,
    customer_key: str,
    event_at: datetime | None = None,
) -> PlannedMessage:
    """A scheduled message for `rule` at `send_at`, expiring as the rule says; a customer in
    the rule's holdout group gets it `held_out`: planned for the record, never sent."""
    expiry = rule.send.expiry
    assignment = assign(rule, customer_key)
    return PlannedMessage(
        rule_id=rule.id,
        rule_version=rule.version,
        template=assignment.template,
        kind=rule.kind,
        send_at=send_at,
        expires_at=expiry.add_to(send_at) if expiry else None,
        dedupe_key=dedupe_key,
        status=MessageStatus.HELD_OUT if assignment.held_out else MessageStatus.SCHEDULED,
        reason="holdout" if assignment.held_out else None,
        variant=assignment.variant,
        priority=rule.priority,
        event_at=event_at,
    )


def order_dedupe_key(rule_id: str, *, order_id: int, customer_id: int) -> str:
    return f"{rule_id}:order:{order_id}:customer:{customer_id}"


def matching_items(
    rule: Rule, order: OrderFacts, customer: CustomerFacts | None = None
) -> list[ItemFacts] | None:
    """The items a rule is about, or None when the rule does not apply to this order."""
    when = rule.when
    if when.customer is not None and not when.customer.matches(customer):
        return None
    if when.first_order is not None and order.first_order is not when.first_order:
        return None
    if when.order is not None and not when.order.matches(
        total=order.total, currency=order.currency
    ):
        return None
    if when.items is None:
        return list(order.items)
    matched = [item for item in order.items if when.items.matches(item)]
    return matched or None


def step_dedupe_key(first_key: str, step: int) -> str:
    """The dedupe key of step `step` of the sequence whose first message has `first_key`."""
    return first_key if step == 1 else f"{first_key}{STEP_KEY}{step}"


def first_step_key(dedupe_key: str) -> str:
    """The first step's dedupe key, from any step's."""
    head, marker, tail = dedupe_key.rpartition(STEP_KEY)
    return head if marker and tail.isdigit() else dedupe_key


def follow_up(
    rule: Rule,
    *,
    step: int,
    dedupe_key: str,
    variant: str | None,
    event_at: datetime | None,
    since: datetime,
    tz: ZoneInfo,
    held_out: bool = False,
) -> PlannedMessage | None:
    """Step `step + 1` of the rule's sequence, planned once step `step` (`dedupe_key`) was
    decided at `since`; None after the last step (or when the rule has no steps).

    Its delay counts from `since`, or with `from: event` from the sequence's event (from
    `since` when the event time is unknown); then the rule's send window, in the customer's
    zone, places it, and its expiry counts from there as any message's."""
    number = step + 1
    spec = rule.step(number)
    if spec is None:
        return None
    base = event_at if spec.from_ == "event" and event_at is not None else since
    due = spec.delay.add_to(base)
    if due < since:
        due = since  # `from: event` with a delay already past: as soon as it may go
    window = rule.send_window.window if rule.send_window else None
    send_at = next_send_time(due, window=window, tz=tz)
    expiry = rule.send.expiry
    return PlannedMessage(
        rule_id=rule.id,
        rule_version=rule.version,
        template=spec.template,
        kind=rule.kind,
        send_at=send_at,
        expires_at=expiry.add_to(send_at) if expiry else None,
        dedupe_key=step_dedupe_key(first_step_key(dedupe_key), number),
        status=MessageStatus.HELD_OUT if held_out else MessageStatus.SCHEDULED,
        reason="holdout" if held_out else None,
        variant=variant,
        priority=rule.priority,
        step=number,
        event_at=event_at,
    )


def held_out_steps(rule: Rule, first: PlannedMessage, *, tz: ZoneInfo) -> list[PlannedMessage]:
    """A held-out first message's later steps, held out too and planned with it (nothing is
    decided for them later): the control group is recorded the whole sequence along."""
    if first.status != MessageStatus.HELD_OUT or not rule.steps:
        return []
    found = []
    previous: PlannedMessage | None = first
    while previous is not None:
        previous = follow_up(
            rule,
            step=previous.step,
            dedupe_key=previous.dedupe_key,
            variant=previous.variant,
            event_at=previous.event_at,
            since=previous.send_at,
            tz=tz,
            held_out=True,
        )
        if previous is not None:
            found.append(previous)
    return found
