"""Rules on the customer's history: how many orders they placed, what they spent, and their
first purchase in a category (not their first order). Through the real service (signed
HTTP intake, the dispatcher, an SMTP sink) and through `simulate`, which must agree."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from app.planner.learned import PastOrder
from app.planner.planner import History, plan_order_event
from app.rules.facts import CustomerFacts, ItemFacts, OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.runtime import Runtime
from app.simulate.replay import PLANNED
from tests.conftest import FrozenClock
from tests.simulate.test_parity import (
    COFFEE,
    DIAPERS,
    START,
    _about_order,
    _order,
    both_ways,
)
from tests.smtp_sink import SmtpSink

RULES = """
rules:
  - id: third-order
    kind: transactional
    when: {event: order.created, customer: {orders: {min: 3, max: 3}}}
    send: {after: 0m, expires: 2d}
    template: thank-you
  - id: big-spenders
    kind: transactional
    when: {event: order.created, customer: {spent: {currency: EUR, min: 100}}}
    send: {after: 0m, expires: 2d}
    template: thank-you
  - id: first-in-baby
    kind: transactional
    when:
      event: order.created
      items: {category: [baby]}
      first_in_category: true
    send: {after: 0m, expires: 2d}
    template: thank-you
"""

BABY_FOOD = {
    "sku": "FOOD-APPLE-6",
    "name": "Apfelmus, 6 Gläser",
    "category": "baby/food",
    "quantity": 2,
    "unit_price": "7.50",
}


def corpus() -> list[dict[str, Any]]:
    anna, mia = ("c-2001", "anna.krueger@example.org"), ("c-2002", "mia.sokolova@example.org")
    return [
        # Anna: diapers (her first baby item), coffee, a cancelled order, diapers again.
        _order("820982911946155001", *anna, day=0, items=[DIAPERS]),  # 49.80 EUR
        _order("820982911946155002", *anna, day=3, items=[COFFEE]),  # 9.90
        _order("820982911946155003", *anna, day=5, items=[COFFEE, COFFEE]),
        _about_order("order.cancelled", "820982911946155003", day=5.5),
        _order("820982911946155004", *anna, day=8, items=[DIAPERS, DIAPERS]),  # 99.60
        # Mia: baby food first, then diapers: a new need within "baby", though not her
        # first order.
        _order("820982911946155101", *mia, day=1, items=[BABY_FOOD]),
        _order("820982911946155102", *mia, day=9, items=[DIAPERS]),
    ]


async def test_rules_on_history_match_alike_in_the_service_and_simulate(
    client: AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    capsys: Any,
) -> None:
    bodies = corpus()
    service, simulated = await both_ways(
        RULES,
        bodies,
        client=client,
        runtime=runtime,
        clock=clock,
        tmp_path=tmp_path,
        capsys=capsys,
    )

    assert simulated == service
    sent = {key for key, seen in service.items() if all(s[0] == PLANNED for s in seen)}
    assert sent == {
        # Her third order when it came; and the fourth is her third standing one, since
        # the cancelled one no longer counts.
        ("820982911946155003", "third-order"),
        ("820982911946155004", "third-order"),
        # 49.80 + 9.90 + 99.60 = 159.30 EUR by then; the cancelled 19.80 does not count.
        ("820982911946155004", "big-spenders"),
        ("820982911946155001", "first-in-baby"),
        ("820982911946155101", "first-in-baby"),
        ("820982911946155102", "first-in-baby"),
    }
    assert len(smtp_sink.received) == len(sent)


def _rule(when: dict[str, Any]) -> Rule:
    return Rule.model_validate(
        {"id": "r", "when": when, "send": {"after": "0m"}, "template": "thank-you"}
    )


def test_first_in_category_keeps_only_the_new_needs() -> None:
    rule = _rule({"event": "order.created", "first_in_category": True})
    placed = START + timedelta(days=30)
    beans = ItemFacts(sku="B", category="coffee/beans")
    arabica = ItemFacts(sku="A", category="coffee/beans/arabica")
    tea = ItemFacts(sku="T", category="tea")
    order = OrderFacts(id=1, status="open", placed_at=placed, items=(arabica, tea))
    history = History(orders=[PastOrder(placed_at=START, items=(beans,))])
    [planned] = plan_order_event(
        event="order.created",
        occurred_at=placed,
        order=order,
        customer_id=1,
        rules=RuleSet(rules=(rule,), version="v"),
        customer=CustomerFacts(key="default:c-1"),
        history=history,
    )
    assert planned.rule_id == "r"
    # Only coffee bought before: with tea only in the past, nothing here would be news.
    repeat = OrderFacts(id=2, status="open", placed_at=placed, items=(arabica,))
    assert not plan_order_event(
        event="order.created",
        occurred_at=placed,
        order=repeat,
        customer_id=1,
        rules=RuleSet(rules=(rule,), version="v"),
        history=history,
    )


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ({"event": "birthday", "customer": {"orders": {"min": 2}}}, "apply to order events"),
        ({"event": "birthday", "first_in_category": True}, "apply to order events"),
        (
            {"event": "order.created", "customer": {"spent": {"currency": "EUR"}}},
            "give min, max or both",
        ),
        (
            {"event": "order.created", "customer": {"spent": {"currency": "eur", "min": 1}}},
            "pattern",
        ),
        ({"event": "order.created", "customer": {"orders": {"min": 5, "max": 2}}}, "empty range"),
    ],
)
def test_history_conditions_that_cannot_work_are_rule_errors(
    when: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        _rule(when)
