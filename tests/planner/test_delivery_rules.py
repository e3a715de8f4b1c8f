"""`event: order.delivered` rules: validated, and planned from the delivery, or from the
fulfilment through their `fallback` while no delivery is reported."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from app.models import MessageStatus
from app.planner.planner import (
    DELIVERED_KEY,
    delivery_fallback_keys,
    plan_order_event,
    settle_delivery,
)
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule

FULFILLED = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
DELIVERED = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
ORDER = OrderFacts(
    id=7, status="fulfilled", placed_at=FULFILLED - timedelta(days=1), items=(ItemFacts("A", "a"),)
)


def rule(**send: object) -> Rule:
    return Rule.model_validate(
        {
            "id": "arrived",
            "kind": "transactional",
            "when": {"event": "order.delivered"},
            "send": send,
            "template": "delivery-follow-up",
        }
    )


def test_a_delivery_rule_may_fall_back_to_the_fulfilment() -> None:
    assert rule(after="3d", fallback={"after": "7d"}).send.fallback is not None
    with pytest.raises(ValidationError, match=r"'anchor' does not go with order\.delivered"):
        rule(anchor="item.attributes.made", at="+1y")
    # On other order events a fallback still needs an anchor.
    with pytest.raises(ValidationError, match="'fallback' is the timing for an 'anchor'"):
        Rule.model_validate(
            {
                "id": "x",
                "when": {"event": "order.fulfilled"},
                "send": {"after": "3d", "fallback": {"after": "7d"}},
                "template": "t",
            }
        )


def plan(event: str, at: datetime, order: OrderFacts, rules: RuleSet) -> list:  # type: ignore[type-arg]
    return plan_order_event(event=event, occurred_at=at, order=order, customer_id=3, rules=rules)


def test_fulfilment_plans_the_fallback_and_the_delivery_its_own_message() -> None:
    rules = RuleSet(rules=(rule(after="3d", fallback={"after": "7d"}),), version="v")
    (fallback,) = plan("order.fulfilled", FULFILLED, ORDER, rules)
    assert fallback.send_at == FULFILLED + timedelta(days=7)
    (delivered,) = plan("order.delivered", DELIVERED, ORDER, rules)
    assert delivered.send_at == DELIVERED + timedelta(days=3)
    assert delivered.dedupe_key == fallback.dedupe_key + DELIVERED_KEY
    assert delivery_fallback_keys([delivered]) == [fallback.dedupe_key]
    # Already delivered when the fulfilment is planned (the reports came the other way
    # round): no fallback.
    assert plan("order.fulfilled", FULFILLED, replace(ORDER, delivered_at=DELIVERED), rules) == []
    # Without a fallback, a fulfilment plans nothing for the rule.
    plain = RuleSet(rules=(rule(after="3d"),), version="v")
    assert plan("order.fulfilled", FULFILLED, ORDER, plain) == []


def test_a_delivery_replaces_a_waiting_fallback_and_never_adds_to_a_sent_one() -> None:
    rules = RuleSet(rules=(rule(after="3d", fallback={"after": "7d"}),), version="v")
    (delivered,) = plan("order.delivered", DELIVERED, ORDER, rules)
    fallback_key = delivered.dedupe_key.removesuffix(DELIVERED_KEY)
    assert settle_delivery([delivered], decided=set()) == ([delivered], [fallback_key])
    assert settle_delivery([delivered], decided={fallback_key}) == ([], [])
    assert delivered.status == MessageStatus.SCHEDULED
