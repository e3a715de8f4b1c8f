"""Variants and holdout: stable per customer, in the proportions the rule asks for."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from app.models import MessageStatus
from app.planner.assign import assign
from app.planner.planner import planned_message
from app.rules.model import Rule
from tests.rules.test_timing import PLACED, rules_from

SPLIT = """
rules:
  - id: coffee
    when: {event: order.created}
    variants: [{template: tips, weight: 75}, {template: discount, weight: 25, name: ten-off}]
    holdout: 10%
"""


def rule(tmp_path: Path, text: str = SPLIT) -> Rule:
    return rules_from(tmp_path, text).rules[0]


def test_a_customer_always_gets_the_same_variant_and_group(tmp_path: Path) -> None:
    coffee = rule(tmp_path)
    first = [assign(coffee, f"default:c-{n}") for n in range(200)]
    again = [assign(coffee, f"default:c-{n}") for n in range(200)]
    assert first == again


def test_variants_follow_their_weights_and_holdout_its_share(tmp_path: Path) -> None:
    coffee = rule(tmp_path)
    draws = [assign(coffee, f"shop:{n}") for n in range(20_000)]
    variants = Counter(draw.variant for draw in draws)
    assert set(variants) == {"tips", "ten-off"}
    assert 0.73 < variants["tips"] / 20_000 < 0.77
    held_out = sum(draw.held_out for draw in draws) / 20_000
    assert 0.09 < held_out < 0.11
    # Holdout is drawn apart from the variant: the control group has both variants in it.
    in_control = Counter(draw.variant for draw in draws if draw.held_out)
    assert 0.70 < in_control["tips"] / sum(in_control.values()) < 0.80
    templates = {draw.variant: draw.template for draw in draws}
    assert templates == {"tips": "tips", "ten-off": "discount"}


def test_the_same_customer_can_land_differently_in_another_rule(tmp_path: Path) -> None:
    coffee = rule(tmp_path)
    other = rule(tmp_path, SPLIT.replace("id: coffee", "id: tea"))
    pairs = {(assign(coffee, str(n)).variant, assign(other, str(n)).variant) for n in range(200)}
    assert ("tips", "ten-off") in pairs and ("ten-off", "tips") in pairs


def test_held_out_messages_are_planned_but_marked(tmp_path: Path) -> None:
    coffee = rule(tmp_path)
    planned = [
        planned_message(coffee, send_at=PLACED, dedupe_key=str(n), customer_key=str(n))
        for n in range(500)
    ]
    held = [plan for plan in planned if plan.status == MessageStatus.HELD_OUT]
    assert held and all(plan.reason == "holdout" for plan in held)
    assert len(held) < 100
    assert {plan.variant for plan in planned} == {"tips", "ten-off"}


def test_a_rule_without_variants_or_holdout_is_untouched(tmp_path: Path) -> None:
    plain = rule(
        tmp_path, "rules:\n  - id: x\n    when: {event: order.created}\n    template: thanks\n"
    )
    assignment = assign(plain, "anyone")
    assert (assignment.template, assignment.variant, assignment.held_out) == (
        "thanks",
        None,
        False,
    )
