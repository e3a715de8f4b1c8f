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

A rule with `min_chance` aims for landing instead: the reminder goes where the chance that the
customer rebuys within `lead` after it is highest, and not at all when that chance is below
`min_chance` (a customer too irregular to predict is not mailed at random). The chance comes
from a predictive spread of the customer's next gap: a log-normal around the shrunk estimate
above (its spread shrunk from the product's toward the customer's own), mixed with a narrow
bump at each of their own recent gaps (a customer who alternates 7 and 14 days is not expected
at 10). Units count less than proportionally there: real order history (bench/
timing_backtest.py) shows two packs lasting about 1.2 times as long as one, not twice.
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
# Landing (`min_chance`), measured on the Complete Journey order history (bench/data/README.md):
# days per purchase grow as units ** this; log gaps spread with this variance across customers
# of one product (0.75 to 1.2 in the 12 categories measured); the product's spread counts as
# this many of the customer's own gaps; each own gap is a bump this wide (log scale).
QUANTITY_ELASTICITY = 0.3
PRODUCT_LOG_VARIANCE = 0.9
SPREAD_PRIOR_WEIGHT = 3.0
OWN_GAP_SPREAD = 0.1
# Candidate send times before an own gap, as fractions of `lead`.
LEAD_FRACTIONS = (0.125, 0.25, 0.5, 0.75, 0.875)
EARLIEST = 1.0  # days: no reminder the day of the purchase


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


def log_gaps(bought: Sequence[tuple[datetime, int]], *, elasticity: float = 1.0) -> list[float]:
    """log(days per unit) between consecutive purchases; a purchase of n units counts as
    n ** elasticity."""
    return [
        math.log(max((later - earlier).total_seconds() / DAY / units**elasticity, 0.5))
        for (earlier, units), (later, _) in itertools.pairwise(bought)
    ]


def own_log_gaps(rule: Rule, bought: Sequence[tuple[datetime, int]]) -> list[float]:
    """The customer's gaps as the rule's timing reads them (units weigh less when landing)."""
    learned = rule.send.learned
    landing = learned is not None and learned.min_chance is not None
    return log_gaps(bought, elasticity=QUANTITY_ELASTICITY if landing else 1.0)


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
) -> datetime | None:
    """When to send: `lead` before the expected repurchase, or with `min_chance` where it most
    likely lands (None: not likely enough)."""
    learned = rule.send.learned
    assert learned is not None
    fallback = parse_range(learned.fallback)
    own = list(own_log_gaps)[-OWN_GAPS_KEPT:]
    if not own and product.count == 0:
        return fallback.at(anchor, position)
    if learned.min_chance is not None:
        landing = best_landing(learned, own, product, anchor=anchor, quantity=quantity)
        if landing.chance * 100 < learned.min_chance:
            return None
        return anchor + timedelta(days=landing.days)
    gap = timedelta(days=expected_days_per_unit(learned, own, product, anchor=anchor)) * quantity
    lead = timedelta(seconds=parse_duration(learned.lead).seconds)
    return anchor + max(gap - lead, gap / 2)


def expected_days_per_unit(
    learned: Learned, own_log_gaps: Sequence[float], product: GapStats, *, anchor: datetime
) -> float:
    return math.exp(_expected_log(learned, own_log_gaps, product, anchor=anchor))


def _expected_log(
    learned: Learned, own_log_gaps: Sequence[float], product: GapStats, *, anchor: datetime
) -> float:
    fallback = parse_range(learned.fallback)
    lead_days = parse_duration(learned.lead).seconds / DAY
    prior_days = (fallback.low.add_to(anchor) - anchor).total_seconds() / DAY + lead_days
    prior = math.log(max(prior_days, 0.5))
    product_log = (PRODUCT_PRIOR_WEIGHT * prior + product.sum_log_days) / (
        PRODUCT_PRIOR_WEIGHT + product.count
    )
    return (CUSTOMER_PRIOR_WEIGHT * product_log + sum(own_log_gaps)) / (
        CUSTOMER_PRIOR_WEIGHT + len(own_log_gaps)
    )


@dataclass(frozen=True)
class Landing:
    """A send time (days after the purchase) and its estimated chance of landing: the
    customer rebuying within `lead` after it."""

    days: float
    chance: float


def best_landing(
    learned: Learned,
    own_log_gaps: Sequence[float],
    product: GapStats,
    *,
    anchor: datetime,
    quantity: int,
) -> Landing:
    """The send time with the best chance of landing, among the best for the smooth spread
    and a few just before each of the customer's own gaps."""
    own = list(own_log_gaps)[-OWN_GAPS_KEPT:]
    bumps = _bumps(learned, own, product, anchor=anchor)
    lead = parse_duration(learned.lead).seconds / DAY
    scale = math.log(max(quantity, 1) ** QUANTITY_ELASTICITY)
    _, centre, spread = bumps[0]
    candidates = [_best_window(centre + scale, spread, lead)] + [
        math.exp(gap + scale) - fraction * lead for gap in own for fraction in LEAD_FRACTIONS
    ]
    return max(
        (
            Landing(days, _chance(bumps, days=days, lead=lead, scale=scale))
            for days in (max(candidate, EARLIEST) for candidate in candidates)
        ),
        key=lambda landing: landing.chance,
    )


def landing_chance(
    learned: Learned,
    own_log_gaps: Sequence[float],
    product: GapStats,
    *,
    anchor: datetime,
    days: float,
    quantity: int,
) -> float:
    """The estimated chance that a reminder `days` after the purchase lands."""
    own = list(own_log_gaps)[-OWN_GAPS_KEPT:]
    return _chance(
        _bumps(learned, own, product, anchor=anchor),
        days=days,
        lead=parse_duration(learned.lead).seconds / DAY,
        scale=math.log(max(quantity, 1) ** QUANTITY_ELASTICITY),
    )


def _bumps(
    learned: Learned, own: Sequence[float], product: GapStats, *, anchor: datetime
) -> list[tuple[float, float, float]]:
    """The customer's next gap (log days per unit) as weighted normals (weight, mean, sd):
    the shrunk estimate with its spread first, then a narrow one at each own gap."""
    centre = _expected_log(learned, own, product, anchor=anchor)
    spread = math.sqrt(
        (SPREAD_PRIOR_WEIGHT * PRODUCT_LOG_VARIANCE + sum((gap - centre) ** 2 for gap in own))
        / (SPREAD_PRIOR_WEIGHT + len(own))
    )
    return [(CUSTOMER_PRIOR_WEIGHT, centre, spread)] + [(1.0, gap, OWN_GAP_SPREAD) for gap in own]


def _chance(
    bumps: Sequence[tuple[float, float, float]], *, days: float, lead: float, scale: float
) -> float:
    """The share of the bumps' mass between `days` and `days + lead` (scaled by quantity)."""
    low, high = math.log(days) - scale, math.log(days + lead) - scale
    return sum(
        weight * (_normal_cdf((high - mean) / sd) - _normal_cdf((low - mean) / sd))
        for weight, mean, sd in bumps
    ) / sum(weight for weight, _, _ in bumps)


def _best_window(mean: float, sd: float, width: float) -> float:
    """Where a window `width` days wide holds most of a log-normal(mean, sd) in days: its two
    ends have equal density there, found by bisection."""

    def log_density(days: float) -> float:
        return -((math.log(days) - mean) ** 2) / (2 * sd * sd) - math.log(days)

    low, high = 1e-3, max(math.exp(mean + 4 * sd), 1.0)
    for _ in range(60):
        middle = (low + high) / 2
        if log_density(middle) < log_density(middle + width):
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))
