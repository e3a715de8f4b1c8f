"""Learned intervals: a customer's own rhythm, shrunk toward the product's and the rule's."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.planner.learned import (
    PRODUCT_PRIOR_WEIGHT,
    GapStats,
    PastOrder,
    latest_gap,
    log_gaps,
    purchases,
)
from app.planner.planner import History, plan_order_event
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet
from tests.rules.test_timing import rules_from

START = datetime(2026, 1, 5, 12, tzinfo=UTC)
COFFEE = """
rules:
  - id: coffee
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {learned: {fallback: 4w..5w, lead: 7d}}
    template: thank-you
"""


def coffee(quantity: int = 1, sku: str = "BEANS-1") -> ItemFacts:
    return ItemFacts(sku, "coffee/beans", quantity=quantity)


def past(days: float, *items: ItemFacts) -> PastOrder:
    return PastOrder(placed_at=START + timedelta(days=days), items=items or (coffee(),))


def delay(rules: RuleSet, *, at_day: float, history: History, quantity: int = 1) -> timedelta:
    placed = START + timedelta(days=at_day)
    order = OrderFacts(id=99, status="open", placed_at=placed, items=(coffee(quantity),))
    [planned] = plan_order_event(
        event="order.created",
        occurred_at=placed,
        order=order,
        customer_id=1,
        rules=rules,
        history=history,
    )
    return planned.send_at - placed


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return rules_from(tmp_path, COFFEE)


def test_with_nothing_known_the_fallback_is_used_as_written(rules: RuleSet) -> None:
    assert delay(rules, at_day=0, history=History()) == timedelta(weeks=4)
    assert delay(rules, at_day=0, history=History(), quantity=2) == timedelta(weeks=4, days=3.5)


def test_a_regular_customer_is_reminded_a_lead_before_their_own_rhythm(rules: RuleSet) -> None:
    # Every 20 days for a year: their latest 10 gaps outweigh the 35-day prior (2 pseudo
    # observations): about 22 days expected, less the 7-day lead.
    orders = [past(20 * n) for n in range(18)]
    sent = delay(rules, at_day=20 * 18, history=History(orders=orders))
    assert timedelta(days=14) < sent < timedelta(days=15)


def test_one_observation_moves_the_estimate_only_part_of_the_way(rules: RuleSet) -> None:
    one = delay(rules, at_day=20, history=History(orders=[past(0)]))
    many = delay(rules, at_day=200, history=History(orders=[past(20 * n) for n in range(10)]))
    fallback = timedelta(weeks=4)
    assert many < one < fallback


def test_the_product_gap_guides_a_customer_seen_for_the_first_time(rules: RuleSet) -> None:
    # Other customers rebuy every 50 days, observed 200 times.
    product = GapStats(count=200, sum_log_days=200 * math.log(50))
    sent = delay(rules, at_day=0, history=History(product_gaps={"coffee": product}))
    expected = math.exp((PRODUCT_PRIOR_WEIGHT * math.log(35) + 200 * math.log(50)) / 205) - 7
    assert sent == pytest.approx(timedelta(days=expected), abs=timedelta(minutes=1))


def test_gaps_are_per_unit_so_a_double_pack_waits_twice_as_long(rules: RuleSet) -> None:
    orders = [past(20 * n) for n in range(18)]
    single = delay(rules, at_day=360, history=History(orders=orders))
    double = delay(rules, at_day=360, history=History(orders=orders), quantity=2)
    assert double - single == pytest.approx(single + timedelta(days=7), abs=timedelta(hours=1))


def test_never_sooner_than_halfway_to_the_expected_rebuy(rules: RuleSet) -> None:
    orders = [past(4 * n) for n in range(30)]  # every 4 days: 4 − 7 would be in the past
    sent = delay(rules, at_day=120, history=History(orders=orders))
    assert timedelta(days=1) < sent < timedelta(days=4)


def test_only_the_rules_items_count_and_split_orders_are_one_purchase(rules: RuleSet) -> None:
    rule = rules.rules[0]
    tea = ItemFacts("TEA-1", "tea", quantity=5)
    history = [past(0), past(0.2, coffee(2)), past(10, tea), past(30)]
    bought = purchases(rule, history)
    assert [(when - START, units) for when, units in bought] == [
        (timedelta(0), 3),
        (timedelta(days=30), 1),
    ]
    assert log_gaps(bought) == [pytest.approx(math.log(10))]  # 30 days for 3 units


def test_the_gap_an_order_closes_is_learned_once(rules: RuleSet) -> None:
    rule = rules.rules[0]
    assert latest_gap(rule, [], past(0)) is None  # a first purchase closes no gap
    assert latest_gap(rule, [past(0)], past(25)) == pytest.approx(math.log(25))
    assert latest_gap(rule, [past(0)], past(0.5)) is None  # same purchase, split in two
    tea_only = past(25, ItemFacts("TEA", "tea"))
    assert latest_gap(rule, [past(0)], tea_only) is None
