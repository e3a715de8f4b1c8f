"""What order intake and its anchor job add around the planner (app/orders/service.py), for
the replay's in-memory customers and orders instead of a session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from app.models import MessageStatus
from app.outbox.checks import Purchase, SendFacts, send_blocker
from app.planner.dates import LATE_GRACE
from app.planner.planner import (
    ANCHOR_KEY,
    History,
    PlannedMessage,
    matching_items,
    order_dedupe_key,
    plan_order_event,
)
from app.rules.facts import OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.simulate.state import Customer, Order, order_facts, standing_orders


def checked_now(
    planned: list[PlannedMessage],
    *,
    rules: RuleSet,
    rebuy: Mapping[str, bool],
    customer: Customer,
    facts: OrderFacts,
    history: History,
    now: datetime,
) -> list[PlannedMessage]:
    """The send-time checks run once already while planning (service._checked_now): what
    could not be sent now is planned with its final status and reason."""
    if not any(plan.status == MessageStatus.SCHEDULED for plan in planned):
        return planned
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
        if later and rebuy[rule.id]:  # only a rebuy check compares the items
            matched = matching_items(rule, facts) or []
            purchased = [Purchase.of(item) for item in matched]
        blocker = send_blocker(
            SendFacts(
                kind=plan.kind,
                expires_at=None,
                customer_deleted=customer.deleted,
                email=customer.email,
                marketing_consent=customer.marketing_consent,
                suppressed=False,  # no suppression list offline
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


@dataclass(frozen=True)
class AnchorPlan:
    """Date-anchored messages for one order, and the no-date fallbacks they replace."""

    order: Order
    dated: list[PlannedMessage]
    fallback_keys: frozenset[str]


def replan_anchors(*, anchored: RuleSet, customer: Customer, now: datetime) -> list[AnchorPlan]:
    """What the anchor job plans for a customer whose data changed (service.replan_anchors):
    each standing order's anchored messages from the dates known now."""
    if customer.deleted:
        return []
    found = []
    for order in standing_orders(customer):
        if not any(_may_match(rule, order) for rule in anchored.rules):
            continue  # the planner would plan nothing for it
        facts = order_facts(order, customer)
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
            if dated:
                keys = frozenset(
                    order_dedupe_key(rule_id, order_id=order.id, customer_id=customer.id)
                    for rule_id in {plan.rule_id for plan in dated}
                )
                found.append(AnchorPlan(order, dated, keys))
    return found


def _may_match(rule: Rule, order: Order) -> bool:
    """False when no item can match the rule's item filter: a quick, exact no."""
    items = rule.when.items
    return items is None or any(items.matches(item) for item in order.items)
