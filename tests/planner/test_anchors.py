"""Date anchors: a child's birth date + N years, one message per child, with a fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from app.planner.planner import plan_order_event
from app.rules.anchors import anchor_dates
from app.rules.facts import CustomerFacts, ItemFacts, OrderFacts
from app.rules.loader import RuleSet, load_rules

SCHOOL_DESK = """
rules:
  - id: school-desk
    when: {event: order.created, items: {category: [kids/furniture]}}
    send:
      anchor: customer.attributes.children[].birth_date
      at: +6y9mo
      fallback: {after: 5y}
    template: school-desk
"""
PLACED = datetime(2026, 11, 20, 10, tzinfo=UTC)
BED = ItemFacts("BED-1", "kids/furniture/beds")


def rules_from(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(SCHOOL_DESK)
    rule_set = load_rules(tmp_path)
    assert rule_set.errors == (), rule_set.errors
    return rule_set


def plan(rules: RuleSet, customer: CustomerFacts | None) -> list:
    order = OrderFacts(id=4, status="open", placed_at=PLACED, items=(BED,))
    return plan_order_event(
        event="order.created",
        occurred_at=PLACED,
        order=order,
        customer_id=9,
        rules=rules,
        tz=ZoneInfo("Europe/Moscow"),
        customer=customer,
    )


def test_one_message_per_child_at_six_years_nine_months(tmp_path: Path) -> None:
    children = {"children": [{"birth_date": "2021-05-01"}, {"birth_date": "2024-12-31"}]}
    planned = plan(rules_from(tmp_path), CustomerFacts(attributes=children))
    moscow = [p.send_at.astimezone(ZoneInfo("Europe/Moscow")) for p in planned]
    assert [m.isoformat() for m in moscow] == [
        "2028-02-01T10:00:00+03:00",  # 2021-05-01 + 6y9mo, at 10:00 local
        "2031-09-30T10:00:00+03:00",  # 2024-12-31 + 6y9mo: 30 September (month end)
    ]
    assert [p.dedupe_key for p in planned] == [
        "school-desk:order:4:customer:9:anchor:2021-05-01",
        "school-desk:order:4:customer:9:anchor:2024-12-31",
    ]


def test_fallback_when_no_birth_date_and_nothing_for_an_older_child(tmp_path: Path) -> None:
    rules = rules_from(tmp_path)
    [fallback] = plan(rules, CustomerFacts(attributes={}))
    assert fallback.send_at - PLACED > timedelta(days=5 * 365)
    assert fallback.dedupe_key == "school-desk:order:4:customer:9"
    older = CustomerFacts(attributes={"children": [{"birth_date": "2015-03-01"}]})
    assert plan(rules, older) == []


def test_anchor_paths() -> None:
    customer = CustomerFacts(
        birthday=date(1990, 2, 28),
        attributes={
            "children": [{"birth_date": "2021-05-01"}, {"name": "x"}, "junk"],
            "wedding": "2019-06-15T12:00:00Z",
            "bad": "soon",
        },
    )
    assert anchor_dates("customer.birthday", customer=customer, items=[]) == [date(1990, 2, 28)]
    assert anchor_dates(
        "customer.attributes.children[].birth_date", customer=customer, items=[]
    ) == [date(2021, 5, 1)]
    assert anchor_dates("customer.attributes.wedding", customer=customer, items=[]) == [
        date(2019, 6, 15)
    ]
    assert anchor_dates("customer.attributes.bad", customer=customer, items=[]) == []
    item = ItemFacts("S", "c", attributes={"expires_on": "2027-01-10"})
    assert anchor_dates("item.attributes.expires_on", customer=None, items=[item]) == [
        date(2027, 1, 10)
    ]


def test_anchor_needs_at_and_fallback_needs_anchor(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "  - id: a\n    when: {event: order.created}\n"
        "    send: {anchor: customer.birthday}\n    template: t\n"
        "  - id: b\n    when: {event: order.created}\n"
        "    send: {after: 1d, fallback: {after: 2d}}\n    template: t\n"
    )
    errors = "\n".join(load_rules(tmp_path).errors)
    assert "'anchor' goes with 'at'" in errors
    assert "'fallback' is the timing for an 'anchor'" in errors
