"""Timing: ranges placed by quantity, supply-based replenishment, calendar months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.planner.planner import matching_items, plan_order_event
from app.rules.durations import parse_range
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet, load_rules
from app.rules.timing import range_position

PLACED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def rules_from(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(text)
    rule_set = load_rules(tmp_path)
    assert rule_set.errors == (), rule_set.errors
    return rule_set


def order(*items: ItemFacts, **facts: object) -> OrderFacts:
    return OrderFacts(id=1, status="open", placed_at=PLACED, items=items, **facts)  # type: ignore[arg-type]


def diapers(quantity: int) -> ItemFacts:
    return ItemFacts("DIAPER-M-60", "baby/diapers", quantity=quantity, unit_price=Decimal("24.90"))


def send_at(rules: RuleSet, facts: OrderFacts) -> list[tuple[str, timedelta]]:
    planned = plan_order_event(
        event="order.created", occurred_at=PLACED, order=facts, customer_id=1, rules=rules
    )
    return [(plan.rule_id, plan.send_at - PLACED) for plan in planned]


def test_range_is_placed_by_quantity(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        "rules:\n  - id: restock\n    when: {event: order.created, items: {sku: ['DIAPER-*']}}\n"
        "    send: {after: 1w..2w}\n    template: replenish\n",
    )
    assert send_at(rules, order(diapers(1))) == [("restock", timedelta(weeks=1))]
    assert send_at(rules, order(diapers(2))) == [("restock", timedelta(days=10, hours=12))]
    four = send_at(rules, order(diapers(4)))[0][1]
    assert timedelta(days=12) < four < timedelta(weeks=2)


def test_range_positions_grow_with_quantity_and_stay_inside() -> None:
    positions = [range_position(quantity) for quantity in range(1, 50)]
    assert positions[0] == 0.0
    assert positions == sorted(positions) and all(0 <= p < 1 for p in positions)


def test_supply_is_quantity_times_days_less_lead(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        "rules:\n  - id: cartridges\n"
        "    when: {event: order.created, items: {category: [office/cartridges]}}\n"
        "    send: {supply: {days_per_unit: 75, lead: 7d}}\n    template: replenish\n",
    )
    ink = ItemFacts("HP-301", "office/cartridges/hp", quantity=2)
    other = ItemFacts("PAPER", "office/paper", quantity=10)
    assert send_at(rules, order(ink, other)) == [("cartridges", timedelta(days=2 * 75 - 7))]


def test_month_ranges_follow_the_calendar() -> None:
    months = parse_range("2mo..3mo")
    jan31 = datetime(2027, 1, 31, tzinfo=UTC)
    assert months.at(jan31, 0) == datetime(2027, 3, 31, tzinfo=UTC)
    assert months.at(jan31, 1) == datetime(2027, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2w..1w", "1w..", "..2w", "1w...2w"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(ValueError):
        parse_range(text)


def test_item_order_and_first_order_filters(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        "rules:\n"
        "  - id: organic\n    when: {event: order.created, items: {tag: [organic]}}\n"
        "    template: t\n"
        "  - id: pricey\n    when: {event: order.created, items: {price: {min: 100}}}\n"
        "    template: t\n"
        "  - id: bulk\n"
        "    when: {event: order.created, items: {sku: ['A-*'], quantity: {min: 3}}}\n"
        "    template: t\n"
        "  - id: big-eur\n"
        "    when: {event: order.created, order: {total: {min: 50}, currency: [EUR]}}\n"
        "    template: t\n"
        "  - id: welcome\n    when: {event: order.created, first_order: true}\n    template: t\n"
        "  - id: loyal\n    when: {event: order.created, first_order: false}\n    template: t\n",
    )

    def matched(facts: OrderFacts) -> set[str]:
        return {rule.id for rule in rules.rules if matching_items(rule, facts) is not None}

    apple = ItemFacts("A-1", "food", quantity=3, unit_price=Decimal("2"), tags=("organic",))
    tv = ItemFacts("TV-1", "electronics", quantity=1, unit_price=Decimal("499"))
    first = dict(total=Decimal("6"), currency="EUR", first_order=True)
    assert matched(order(apple, **first)) == {"organic", "bulk", "welcome"}
    repeat = dict(total=Decimal("499"), currency="EUR", first_order=False)
    assert matched(order(tv, **repeat)) == {"pricey", "big-eur", "loyal"}
    usd = dict(total=Decimal("499"), currency="USD", first_order=None)
    assert matched(order(tv, **usd)) == {"pricey"}  # history unknown: neither first nor repeat


def test_after_and_supply_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - id: x\n    when: {event: order.created}\n"
        "    send: {after: 1d, supply: {days_per_unit: 30}}\n    template: t\n"
    )
    assert "use one of 'after', 'supply', 'learned' and 'at', not after and supply" in "\n".join(
        load_rules(tmp_path).errors
    )


WINDOWED = """
defaults:
  send_window: {days: mon-fri, hours: "09:00-20:00"}
rules:
  - id: follow-up
    when: {event: order.created}
    send: {after: 2d}
    template: t
  - id: thank-you
    when: {event: order.created}
    send: {after: 0m}
    send_window: null
    template: t
  - id: morning
    when: {event: order.created}
    send: {after: 3d, time: "10:00"}
    template: t
"""


def test_windows_and_time_of_day_in_the_customers_zone(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    rules = rules_from(tmp_path, WINDOWED)
    # Friday 2026-11-20 22:30 in Moscow (19:30 UTC).
    placed = datetime(2026, 11, 20, 19, 30, tzinfo=UTC)
    facts = OrderFacts(id=1, status="open", placed_at=placed, items=(diapers(1),))
    planned = plan_order_event(
        event="order.created",
        occurred_at=placed,
        order=facts,
        customer_id=1,
        rules=rules,
        tz=ZoneInfo("Europe/Moscow"),
    )
    moscow = {plan.rule_id: plan.send_at.astimezone(ZoneInfo("Europe/Moscow")) for plan in planned}
    # +2d is Sunday 22:30: the file's mon-fri window moves it to Monday 09:00.
    assert moscow["follow-up"].isoformat() == "2026-11-23T09:00:00+03:00"
    # `send_window: null` opts out: the thank-you goes at once, at night.
    assert moscow["thank-you"].isoformat() == "2026-11-20T22:30:00+03:00"
    # +3d is Monday (local date) at 10:00, inside the window.
    assert moscow["morning"].isoformat() == "2026-11-23T10:00:00+03:00"
    assert all(plan.send_at.utcoffset() == timedelta(0) for plan in planned)


def test_bad_window_is_a_lint_error(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("defaults:\n  send_window: {days: mun-fri}\nrules: []\n")
    errors = load_rules(tmp_path).errors
    assert len(errors) == 1 and ":2:16: defaults.send_window" in errors[0]
    assert "mun" in errors[0]


def test_time_of_day_never_moves_a_send_earlier_and_may_be_unquoted(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    rules = rules_from(
        tmp_path,
        "rules:\n  - id: ten\n    when: {event: order.created}\n"
        "    send: {after: 0m, time: 10:00}\n    template: t\n",
    )
    assert rules.rules[0].send.time == "10:00"
    afternoon = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    facts = OrderFacts(id=1, status="open", placed_at=afternoon, items=(diapers(1),))
    [planned] = plan_order_event(
        event="order.created",
        occurred_at=afternoon,
        order=facts,
        customer_id=1,
        rules=rules,
        tz=ZoneInfo("UTC"),
    )
    assert planned.send_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
