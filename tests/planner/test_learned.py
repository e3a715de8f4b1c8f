"""Learned intervals: a customer's own rhythm, shrunk toward the product's and the rule's."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.planner.learned import (
    PRODUCT_PRIOR_WEIGHT,
    QUANTITY_ELASTICITY,
    GapStats,
    PastOrder,
    best_landing,
    landing_chance,
    latest_gap,
    log_gaps,
    purchases,
)
from app.planner.planner import History, PlannedMessage, plan_order_event
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet, load_rules
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


LANDING = """
rules:
  - id: coffee
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {learned: {fallback: 4w..5w, lead: 4d, min_chance: 15%}}
    template: thank-you
"""


@pytest.fixture
def landing(tmp_path: Path) -> RuleSet:
    return rules_from(tmp_path, LANDING)


def planned_for(
    rules: RuleSet, *, at_day: float, history: History, quantity: int = 1
) -> list[PlannedMessage]:
    placed = START + timedelta(days=at_day)
    order = OrderFacts(id=99, status="open", placed_at=placed, items=(coffee(quantity),))
    return plan_order_event(
        event="order.created",
        occurred_at=placed,
        order=order,
        customer_id=1,
        rules=rules,
        history=history,
    )


def test_min_chance_is_a_percentage(landing: RuleSet, tmp_path: Path) -> None:
    learned = landing.rules[0].send.learned
    assert learned is not None and learned.min_chance == 15
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "rules.yaml").write_text(LANDING.replace("15%", "100%"))
    assert load_rules(tmp_path / "bad").errors


def test_landing_with_nothing_known_uses_the_fallback_as_written(landing: RuleSet) -> None:
    [planned] = planned_for(landing, at_day=0, history=History())
    assert planned.send_at - START == timedelta(weeks=4)


def test_landing_reminds_a_regular_customer_within_the_lead_before_their_rhythm(
    landing: RuleSet,
) -> None:
    orders = [past(20 * n) for n in range(18)]
    [planned] = planned_for(landing, at_day=360, history=History(orders=orders))
    assert timedelta(days=16) <= planned.send_at - (START + timedelta(days=360)) < timedelta(20)


def test_landing_aims_at_one_of_an_alternating_customers_gaps_not_between(
    landing: RuleSet,
) -> None:
    # Gaps of 7 and 21 days in turn: their log-average (12 days) is neither.
    days, orders = 0, []
    for n in range(12):
        orders.append(past(days))
        days += 7 if n % 2 else 21
    [planned] = planned_for(landing, at_day=days, history=History(orders=orders))
    wait = planned.send_at - (START + timedelta(days=days))
    assert timedelta(days=3) <= wait < timedelta(days=7) or (
        timedelta(days=17) <= wait < timedelta(days=21)
    )


def test_landing_sends_nothing_to_a_customer_too_irregular_to_predict(landing: RuleSet) -> None:
    days, orders = 0, []
    for gap in (3, 60, 14, 45, 25, 90, 8, 35, 120, 19):  # no two within 4 days
        orders.append(past(days))
        days += gap
    assert planned_for(landing, at_day=days, history=History(orders=orders)) == []


def test_landing_counts_units_less_than_proportionally(landing: RuleSet) -> None:
    # A customer who bought one bag every 20 days, now buying two: they are expected about
    # 2 ** QUANTITY_ELASTICITY times as late, not twice.
    orders = [past(20 * n) for n in range(18)]
    [planned] = planned_for(landing, at_day=360, history=History(orders=orders), quantity=2)
    expected = 20 * 2**QUANTITY_ELASTICITY
    wait = planned.send_at - (START + timedelta(days=360))
    assert timedelta(days=expected - 4) <= wait < timedelta(days=expected)


def test_best_landing_is_the_best_chance_among_its_neighbours(landing: RuleSet) -> None:
    learned = landing.rules[0].send.learned
    assert learned is not None
    own = [math.log(gap) for gap in (18, 20, 22, 19, 21)]
    product = GapStats(count=100, sum_log_days=100 * math.log(30))
    best = best_landing(learned, own, product, anchor=START, quantity=1)
    assert 0 < best.chance < 1
    # Moving the send time a day either way lands less often.
    for days in (best.days - 1, best.days + 1):
        assert landing_chance(learned, own, product, anchor=START, days=days, quantity=1) <= (
            best.chance
        )
