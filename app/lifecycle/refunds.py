"""What is left of an order after partial refunds, and what that cancels. Pure: the
lifecycle flows (app/lifecycle/flows.py) decide refunds here, for the service and simulate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from app.planner.planner import PlannedMessage
from app.rules.facts import ItemFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.statuses import MessageStatus


class _Item(Protocol):
    @property
    def sku(self) -> str | None: ...

    @property
    def quantity(self) -> int: ...


def remaining_quantities(items: Sequence[_Item], refunds: Sequence[Mapping[str, Any]]) -> list[int]:
    """Per item, the quantity not refunded. A refund of a SKU is taken from that SKU's lines
    in order, never below zero; a refund of a SKU the order does not have changes nothing."""
    left = [item.quantity for item in items]
    for refund in refunds:
        wanted = int(refund.get("quantity", 1))
        for index, item in enumerate(items):
            if wanted <= 0:
                break
            if item.sku == refund.get("sku"):
                taken = min(left[index], wanted)
                left[index] -= taken
                wanted -= taken
    return left


def all_refunded(rule: Rule, items: Sequence[ItemFacts], left: Sequence[int]) -> bool:
    """Whether everything a rule is about in this order has been refunded."""
    matched = [
        quantity
        for item, quantity in zip(items, left, strict=True)
        if rule.when.items is None or rule.when.items.matches(item)
    ]
    return bool(matched) and not any(matched)


def fully_refunded(items: Sequence[_Item], refunds: Sequence[Mapping[str, Any]]) -> bool:
    """Whether refunds by SKU took every item: the order then stands refunded. Unknown items
    (refunds that came before the order) say nothing yet."""
    return bool(items) and not any(remaining_quantities(items, refunds))


def refunded_rule_ids(
    rule_ids: Iterable[str],
    *,
    rules: RuleSet,
    items: Sequence[ItemFacts],
    refunds: Sequence[Mapping[str, Any]],
) -> set[str]:
    """Of these rules, those whose items in the order were all refunded: their waiting
    messages are moot (`order_refunded`); the others still stand. A rule missing from
    `rules` is left to the send-time checks."""
    left = remaining_quantities(items, refunds)
    return {
        rule_id
        for rule_id in set(rule_ids)
        if (rule := rules.by_id(rule_id)) is not None and all_refunded(rule, items, left)
    }


def without_refunded(
    planned: Sequence[PlannedMessage],
    *,
    rules: RuleSet,
    items: Sequence[ItemFacts],
    refunds: Sequence[Mapping[str, Any]],
) -> list[PlannedMessage]:
    """Messages planned from the order as placed, those about refunded items cancelled: the
    same messages and times whatever order the refund and the order's events arrive in."""
    if not refunds:
        return list(planned)
    scheduled = [plan.rule_id for plan in planned if plan.status == MessageStatus.SCHEDULED]
    moot = refunded_rule_ids(scheduled, rules=rules, items=items, refunds=refunds)
    return [
        replace(plan, status=MessageStatus.CANCELLED, reason="order_refunded")
        if plan.status == MessageStatus.SCHEDULED and plan.rule_id in moot
        else plan
        for plan in planned
    ]


def items_left(items: Sequence[ItemFacts], refunds: Sequence[Mapping[str, Any]]) -> list[ItemFacts]:
    """The items with some quantity not refunded, each with that quantity (what the
    dispatcher's `matched_items` compares for a rebuy)."""
    left = remaining_quantities(items, refunds)
    return [
        item if quantity == item.quantity else replace(item, quantity=quantity)
        for item, quantity in zip(items, left, strict=True)
        if quantity > 0
    ]
