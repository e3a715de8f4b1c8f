"""What the dispatcher decides when a message falls due (app/outbox/dispatcher.py), for the
replay's in-memory customers and orders instead of a session."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from app.orders.refunds import items_left
from app.outbox.checks import Purchase, SendFacts
from app.planner.limits import Capped, Defer, Skip, cap_decision, free_slot, span_start
from app.rules.model import Limit
from app.simulate.state import Pending

# As the dispatcher's: a message that gave way to a higher-ranked one looks again this soon.
CAP_RECHECK = timedelta(minutes=1)


def send_facts(message: Pending, *, skip_if: tuple[str, ...], rebuy: bool) -> SendFacts:
    """The facts send_blocker decides on, as the dispatcher gathers them."""
    plan, customer, order, rule = message.plan, message.customer, message.order, message.rule
    purchased: list[Purchase] = []
    bought_since: list[Purchase] = []
    # Only a rule that skips on a rebuy looks at what was bought since (the dispatcher loads
    # that history for those alone).
    if rebuy and order is not None:
        item_filter = rule.when.items
        # Less what was refunded, as the dispatcher's matched_items.
        items = items_left(order.items, order.refunds) if order.refunds else order.items
        purchased = [
            Purchase.of(item) for item in items if item_filter is None or item_filter.matches(item)
        ]
        placed = order.placed_at
        if placed is not None:
            bought_since = [
                Purchase.of(item)
                for other in customer.orders
                if other is not order
                and other.stands
                and other.placed_at is not None
                and other.placed_at > placed
                for item in other.items
            ]
    return SendFacts(
        kind=plan.kind,
        expires_at=plan.expires_at,
        customer_deleted=customer.deleted,
        email=customer.email,
        marketing_consent=customer.marketing_consent,
        suppressed=False,  # no suppression list offline
        order_status=order.status if order is not None else None,
        skip_if=skip_if,
        purchased=purchased,
        bought_since=bought_since,
    )


def frequency_cap(
    message: Pending, *, now: datetime, limits: Mapping[str, Limit]
) -> Defer | Skip | None:
    """Whether the rule's and the kind's caps leave room now (dispatcher._frequency_cap).

    Sent messages hold their slot from when they went; due messages of higher rank
    (priority, then age) hold one now."""
    rule, plan, customer = message.rule, message.plan, message.customer
    kind_limit = limits.get(rule.kind)
    caps_on = [limit for limit in (rule.limit, kind_limit) if limit is not None]
    if not caps_on:
        return None
    since = span_start(now, caps_on)
    sent = [entry for entry in customer.sent if entry[0] > since]
    rank = (plan.priority, -message.seq)
    ahead = [
        (now, other.rule.id, other.plan.kind)
        for other in customer.pending.values()
        if other is not message and other.due <= now and (other.plan.priority, -other.seq) > rank
    ]

    def caps(*, with_pending: bool) -> list[Capped]:
        counted = sent + ahead if with_pending else sent
        found = []
        if rule.limit is not None:
            taken = [at for at, rule_id, _ in counted if rule_id == rule.id]
            found.append(Capped(rule.limit, taken))
        if kind_limit is not None:
            taken = [at for at, _, kind in counted if kind == plan.kind]
            found.append(Capped(kind_limit, taken))
        return found

    decision = cap_decision(
        now=now,
        caps=caps(with_pending=False),
        expires_at=plan.expires_at,
        window=rule.send_window.window if rule.send_window else None,
        tz=customer.tz,
    )
    if decision is not None or not ahead or free_slot(now, caps(with_pending=True)) == now:
        return decision
    # A higher-ranked message due now takes the slot; this one looks again shortly.
    recheck = now + CAP_RECHECK
    if plan.expires_at is not None and recheck > plan.expires_at:
        return Skip()
    return Defer(recheck)
