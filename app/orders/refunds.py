"""What is left of an order after partial refunds. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from app.rules.facts import ItemFacts
from app.rules.model import Rule


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
