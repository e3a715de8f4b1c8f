"""Learned repurchase intervals: when this customer will likely need the product again. Pure.

The estimate works in days per unit bought (two bags last about twice as long as one) and on
a log scale (gaps are multiplicative: 20 vs 40 days is as far apart as 40 vs 80). It shrinks
three sources toward each other, each weighing more as it gathers observations:

1. the rule's `fallback` (its low end, plus `lead`) is the prior for the product's gap;
2. the product's typical gap (every customer's observed gaps for this rule) moves away from
   that prior as observations come in, weighing PRODUCT_PRIOR_WEIGHT pseudo-observations;
3. the customer's own gaps move their estimate away from the product's, weighing
   CUSTOMER_PRIOR_WEIGHT pseudo-observations.

The reminder goes `lead` before the expected repurchase (quantity × per-unit gap), and never
sooner than halfway to it. With no observation at all, the fallback is used as written.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.rules.durations import parse_duration, parse_range
from app.rules.facts import ItemFacts
from app.rules.model import Learned, Rule

PRODUCT_PRIOR_WEIGHT = 5.0
CUSTOMER_PRIOR_WEIGHT = 2.0
# Orders closer than this are one purchase split in two, not a repurchase.
SAME_PURCHASE = timedelta(days=1)
OWN_GAPS_KEPT = 10
DAY = 86_400.0


@dataclass(frozen=True)
class PastOrder:
    """A customer's earlier order, as the planner needs it for rebuy gaps."""

    placed_at: datetime
    items: tuple[ItemFacts, ...]


@dataclass(frozen=True)
class GapStats:
    """The product's observed gaps: how many, and the sum of their logs (days per unit)."""

    count: int = 0
    sum_log_days: float = 0.0

    def add(self, log_days: float) -> GapStats:
        return GapStats(self.count + 1, self.sum_log_days + log_days)


def purchases(
    rule: Rule, history: Sequence[PastOrder], *, now: PastOrder | None = None
) -> list[tuple[datetime, int]]:
    """(time, units) of each purchase of what the rule is about, oldest first, split orders
    merged; `now` (the order being planned) is included."""
    orders = sorted([*history, *([now] if now else [])], key=lambda order: order.placed_at)
    bought: list[tuple[datetime, int]] = []
    for order in orders:
        units = sum(
            item.quantity
            for item in order.items
            if rule.when.items is None or rule.when.items.matches(item)
        )
        if not units:
            continue
        if bought and order.placed_at - bought[-1][0] < SAME_PURCHASE:
            bought[-1] = (bought[-1][0], bought[-1][1] + units)
        else:
            bought.append((order.placed_at, units))
    return bought


def log_gaps(bought: Sequence[tuple[datetime, int]]) -> list[float]:
    """log(days per unit) between consecutive purchases."""
    return [
        math.log(max((later - earlier).total_seconds() / DAY / units, 0.5))
        for (earlier, units), (later, _) in itertools.pairwise(bought)
    ]


def latest_gap(rule: Rule, history: Sequence[PastOrder], order: PastOrder) -> float | None:
    """The gap this order closes (from the customer's previous purchase), to learn from."""
    earlier = purchases(rule, [past for past in history if past.placed_at < order.placed_at])
    if not earlier:
        return None
    bought = purchases(rule, [], now=order)
    if not bought or order.placed_at - earlier[-1][0] < SAME_PURCHASE:
        return None
    return log_gaps([earlier[-1], bought[0]])[0]


def learned_due(
    rule: Rule,
    *,
    anchor: datetime,
    quantity: int,
    own_log_gaps: Sequence[float],
    product: GapStats,
    position: float,
) -> datetime:
    """When to send: `lead` before the expected repurchase."""
    learned = rule.send.learned
    assert learned is not None
    fallback = parse_range(learned.fallback)
    own = list(own_log_gaps)[-OWN_GAPS_KEPT:]
    if not own and product.count == 0:
        return fallback.at(anchor, position)
    gap = timedelta(days=expected_days_per_unit(learned, own, product, anchor=anchor)) * quantity
    lead = timedelta(seconds=parse_duration(learned.lead).seconds)
    return anchor + max(gap - lead, gap / 2)


def expected_days_per_unit(
    learned: Learned, own_log_gaps: Sequence[float], product: GapStats, *, anchor: datetime
) -> float:
    fallback = parse_range(learned.fallback)
    lead_days = parse_duration(learned.lead).seconds / DAY
    prior_days = (fallback.low.add_to(anchor) - anchor).total_seconds() / DAY + lead_days
    prior = math.log(max(prior_days, 0.5))
    product_log = (PRODUCT_PRIOR_WEIGHT * prior + product.sum_log_days) / (
        PRODUCT_PRIOR_WEIGHT + product.count
    )
    customer_log = (CUSTOMER_PRIOR_WEIGHT * product_log + sum(own_log_gaps)) / (
        CUSTOMER_PRIOR_WEIGHT + len(own_log_gaps)
    )
    return math.exp(customer_log)
