"""The replay: what would be sent, when, and why not, from webhook bodies alone."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.planner.assign import assign
from app.planner.learned import GapStats, PastOrder, latest_gap
from app.planner.planner import History, plan_order_event
from app.rules.facts import ItemFacts, OrderFacts
from tests.simulate.factories import (
    PLACED,
    by_rule,
    created,
    customer,
    customer_event,
    days,
    iso,
    item,
    order_event,
    replay,
    rules_in,
    timeline,
)

THANKS_AND_DIAPERS = """
rules:
  - id: thanks
    kind: transactional
    when: {event: order.created}
    send: {after: 0m, expires: 2d}
    template: thank-you
  - id: diapers
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 1w..2w, expires: 5d}
    skip_if: [rebought_same_category]
    template: diapers-restock
"""
DIAPERS = item("DIAPER-M-60", "baby/diapers", quantity=2)


def test_a_diaper_order_plans_a_thank_you_and_a_reminder(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, THANKS_AND_DIAPERS)
    result = replay(rules, created("1001", items=[DIAPERS]))
    # Two packs: 1w..2w placed (q-1)/q of the way, 10.5 days after the order.
    assert timeline(result) == [
        ("thanks", PLACED, "planned", None),
        ("diapers", PLACED + timedelta(days=10, hours=12), "planned", None),
    ]
    [reminder] = by_rule(result)["diapers"]
    assert (reminder.email, reminder.order_id, reminder.customer_id) == (
        "c1@example.org",
        "1001",
        "c-1",
    )
    assert (reminder.template, reminder.variant, reminder.kind) == (
        "diapers-restock",
        None,
        "marketing",
    )
    assert result.totals["diapers"] == {
        "planned": 1,
        "skipped": 0,
        "cancelled": 0,
        "expired": 0,
        "held_out": 0,
    }


def test_a_late_webhook_sends_when_it_arrives_and_keeps_the_order_time(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, THANKS_AND_DIAPERS)
    body = created("1001", items=[DIAPERS])
    body["occurred_at"] = "2026-11-20T12:00:00Z"  # three hours after the order was placed
    result = replay(rules, body)
    assert timeline(result) == [
        ("thanks", PLACED + timedelta(hours=3), "planned", None),
        ("diapers", PLACED + timedelta(days=10, hours=12), "planned", None),
    ]


def test_a_cancellation_before_the_send_cancels_and_one_after_changes_nothing(
    tmp_path: Path,
) -> None:
    rules = rules_in(tmp_path, THANKS_AND_DIAPERS)
    result = replay(
        rules,
        created("1001", items=[DIAPERS]),
        order_event("cancelled", "1001", at=PLACED + days(2)),
    )
    assert timeline(result) == [
        ("thanks", PLACED, "planned", None),
        ("diapers", PLACED + timedelta(days=10, hours=12), "cancelled", "order_cancelled"),
    ]


def test_a_cancellation_that_comes_before_its_order_plans_everything_cancelled(
    tmp_path: Path,
) -> None:
    rules = rules_in(tmp_path, THANKS_AND_DIAPERS)
    result = replay(
        rules,
        order_event("refunded", "1001", at=PLACED - timedelta(minutes=5)),
        created("1001", items=[DIAPERS]),
    )
    assert [(rule, status, reason) for rule, _, status, reason in timeline(result)] == [
        ("thanks", "cancelled", "order_refunded"),
        ("diapers", "cancelled", "order_refunded"),
    ]


def test_rebuying_the_same_sku_skips_the_reminder(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: coffee\n    when: {event: order.created, items: {category: [coffee]}}\n"
        "    send: {after: 4w}\n    skip_if: [rebought_same_sku]\n    template: coffee\n",
    )
    other = customer(2)
    result = replay(
        rules,
        created("1", items=[item("COFFEE-A", "coffee/beans")]),
        created("2", at=PLACED + days(10), items=[item("COFFEE-A", "coffee/beans")]),
        created("3", buyer=other, items=[item("COFFEE-A", "coffee/beans")]),
        created("4", buyer=other, at=PLACED + days(10), items=[item("COFFEE-B", "coffee")]),
    )
    found = {(o.order_id, o.status, o.reason) for o in result.outcomes}
    assert found == {
        ("1", "skipped", "rebought_same_sku"),
        ("2", "planned", None),
        ("3", "planned", None),  # the rebuy was another coffee
        ("4", "planned", None),
    }


COMPETING = """
limits:
  marketing: {max: 1, per: 7d}
rules:
  - id: low
    when: {event: order.created}
    send: {after: 1d, expires: EXPIRES}
    priority: 20
    template: low
  - id: high
    when: {event: order.created}
    send: {after: 1d}
    priority: 80
    template: high
"""


def test_under_a_cap_the_higher_priority_goes_and_the_other_waits_for_the_span(
    tmp_path: Path,
) -> None:
    rules = rules_in(tmp_path, COMPETING.replace("EXPIRES", "10d"))
    result = replay(rules, created("1"))
    assert timeline(result) == [
        ("high", PLACED + days(1), "planned", None),
        ("low", PLACED + days(8), "planned", None),  # when `high` leaves the 7-day span
    ]


def test_under_a_cap_a_message_that_would_expire_waiting_is_skipped(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, COMPETING.replace("EXPIRES", "3d"))
    result = replay(rules, created("1"))
    assert timeline(result) == [
        ("high", PLACED + days(1), "planned", None),
        ("low", PLACED + days(1), "skipped", "frequency_cap"),
    ]


def test_a_rule_limit_counts_that_rule_alone(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: monthly\n    when: {event: order.created}\n"
        "    limit: {max: 1, per: 30d}\n    template: monthly\n"
        "  - id: other\n    when: {event: order.created}\n    template: other\n",
    )
    result = replay(rules, created("1"), created("2", at=PLACED + days(1)))
    assert sorted(timeline(result)) == [
        ("monthly", PLACED, "planned", None),
        ("monthly", PLACED + days(30), "planned", None),
        ("other", PLACED, "planned", None),
        ("other", PLACED + days(1), "planned", None),
    ]


def test_holdout_and_variants_are_drawn_as_in_production(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: split\n    when: {event: order.created}\n    holdout: 50%\n"
        "    variants: [{template: plain}, {template: warm, weight: 3}]\n",
    )
    bodies = [created(f"{n}", buyer=customer(n)) for n in range(40)]
    result = replay(rules, *bodies)
    rule = rules.rules[0]
    seen = {o.customer_id: (o.status, o.variant, o.template) for o in result.outcomes}
    expected = {}
    for number in range(40):
        drawn = assign(rule, f"default:c-{number}")  # the webhook's shop and customer id
        status = "held_out" if drawn.held_out else "planned"
        expected[f"c-{number}"] = (status, drawn.variant, drawn.template)
    assert seen == expected
    assert {status for status, _, _ in seen.values()} == {"held_out", "planned"}
    assert replay(rules, *bodies).outcomes == result.outcomes  # the same every run


BIRTHDAY = """
rules:
  - id: birthday
    when: {event: birthday}
    send: {at: -3d, time: "10:00", expires: 2d}
    template: birthday
"""


def test_birthdays_are_planned_every_year_from_when_the_customer_is_known(
    tmp_path: Path,
) -> None:
    rules = rules_in(tmp_path, BIRTHDAY)
    berlin = customer(time_zone="Europe/Berlin", birthday="1990-12-15")
    later = customer(2, birthday="1990-11-10")
    result = replay(
        rules,
        created("1", buyer=berlin),
        created("2", buyer=later),
        created("3", at=PLACED + days(300), buyer=customer(3)),  # until: a year after this
    )
    assert [(o.customer_id, o.send_at, o.status) for o in result.outcomes] == [
        ("c-1", datetime(2026, 12, 12, 9, tzinfo=UTC), "planned"),  # 10:00 in Berlin
        # 7 November 2026 was before c-2 was known: their first is a year later.
        ("c-2", datetime(2027, 11, 7, 10, tzinfo=UTC), "planned"),
        ("c-1", datetime(2027, 12, 12, 9, tzinfo=UTC), "planned"),
    ]


def test_a_deleted_customer_gets_nothing_more(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, BIRTHDAY + THANKS_AND_DIAPERS.replace("rules:\n", ""))
    buyer = customer(birthday="1990-12-15")
    result = replay(
        rules,
        created("1", items=[DIAPERS], buyer=buyer),
        customer_event("deleted", {"id": "c-1"}, at=PLACED + days(1)),
    )
    assert timeline(result) == [
        ("thanks", PLACED, "planned", None),
        ("diapers", PLACED + timedelta(days=10, hours=12), "cancelled", "customer_deleted"),
        ("birthday", datetime(2026, 12, 12, 10, tzinfo=UTC), "cancelled", "customer_deleted"),
    ]
    assert {o.email for o in result.outcomes} == {"c1@example.org"}


def test_without_consent_marketing_is_skipped_when_planned_or_when_consent_goes(
    tmp_path: Path,
) -> None:
    rules = rules_in(tmp_path, THANKS_AND_DIAPERS)
    result = replay(
        rules,
        created("1", items=[DIAPERS]),
        created("2", items=[DIAPERS], buyer=customer(2, marketing_consent=False)),
        customer_event("updated", customer(marketing_consent=False), at=PLACED + days(2)),
        customer_event("updated", customer(marketing_consent=True), at=PLACED + days(3)),
    )
    due = PLACED + timedelta(days=10, hours=12)
    assert sorted((o.customer_id, o.send_at, o.status, o.reason) for o in result.outcomes) == [
        ("c-1", PLACED, "planned", None),  # transactional: no consent needed
        ("c-1", due, "skipped", "no_consent"),  # withdrawn meanwhile; given back too late
        ("c-2", PLACED, "planned", None),
        ("c-2", due, "skipped", "no_consent"),  # skipped as soon as planned
    ]


def test_repeated_events_and_orders_plan_once(tmp_path: Path) -> None:
    rules = rules_in(tmp_path, THANKS_AND_DIAPERS)
    first = created("1", items=[DIAPERS], event_id="evt-a")
    again = created("1", items=[DIAPERS], event_id="evt-b", at=PLACED + timedelta(hours=1))
    result = replay(rules, first, first, again)
    assert [rule for rule, *_ in timeline(result)] == ["thanks", "diapers"]
    assert (result.events, result.duplicate_events) == (3, 1)


def test_fulfilment_plans_from_the_fulfilment_time(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: arrived\n    kind: transactional\n    when: {event: order.fulfilled}\n"
        "    send: {after: 3d}\n    template: arrived\n",
    )
    result = replay(
        rules,
        created("1"),
        order_event("fulfilled", "1", at=PLACED + days(2)),
        order_event("fulfilled", "unknown", at=PLACED + days(2)),  # no customer: nobody to mail
    )
    assert timeline(result) == [("arrived", PLACED + days(5), "planned", None)]


def test_a_child_birth_date_anchors_one_message_and_no_date_falls_back(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: school-desk\n"
        "    when: {event: order.created, items: {category: [kids/furniture]}}\n"
        "    send:\n      anchor: customer.attributes.children[].birth_date\n"
        "      at: +6y9mo\n      fallback: {after: 5y}\n    template: school-desk\n",
    )
    children = {"children": [{"birth_date": "2020-03-01"}, {"birth_date": "2015-01-01"}]}
    desk = [item("DESK-1", "kids/furniture")]
    result = replay(
        rules,
        created("1", items=desk, buyer=customer(attributes=children)),
        created("2", items=desk, buyer=customer(2)),
    )
    # The older child is past it; the five-year fallback lies beyond --until.
    assert timeline(result) == [
        ("school-desk", datetime(2026, 12, 1, 10, tzinfo=UTC), "planned", None)
    ]
    assert result.beyond_until == 1


def test_from_and_until_choose_what_is_listed(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: now\n    kind: transactional\n    when: {event: order.created}\n"
        "    template: now\n  - id: later\n    kind: transactional\n"
        "    when: {event: order.created}\n    send: {after: 60d}\n    template: later\n",
    )
    result = replay(
        rules,
        created("1"),
        created("2", at=PLACED + days(30)),
        created("3", at=PLACED + days(50)),  # after --until: not replayed at all
        start=PLACED + days(1),
        until=PLACED + days(40),
    )
    assert [(o.rule, o.order_id) for o in result.outcomes] == [("now", "2")]
    assert result.beyond_until == 2  # both `later` messages
    assert (result.start, result.until) == (PLACED + days(1), PLACED + days(40))


def test_learned_timing_uses_every_earlier_customers_gaps(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: coffee\n    when: {event: order.created, items: {category: [coffee]}}\n"
        "    send: {learned: {fallback: 4w..5w, lead: 7d}}\n    template: coffee\n",
    )
    coffee = item("COFFEE-A", "coffee/beans")
    third = PLACED + days(30)
    result = replay(
        rules,
        created("1", items=[coffee]),
        created("2", at=PLACED + days(20), items=[coffee]),
        created("3", at=third, items=[coffee], buyer=customer(2)),
    )
    # What the planner makes of one observed 20-day gap, for a customer with no history.
    facts = ItemFacts("COFFEE-A", "coffee/beans")
    rule = rules.rules[0]
    gap = latest_gap(rule, [PastOrder(PLACED, (facts,))], PastOrder(PLACED + days(20), (facts,)))
    assert gap is not None and math.isclose(gap, math.log(20))
    [expected] = plan_order_event(
        event="order.created",
        occurred_at=third,
        order=OrderFacts(id=3, status="open", placed_at=third, items=(facts,), first_order=True),
        customer_id=2,
        rules=rules,
        history=History(product_gaps={"coffee": GapStats(count=1, sum_log_days=gap)}),
    )
    [learned] = [o for o in result.outcomes if o.order_id == "3"]
    assert learned.send_at == expected.send_at != third + timedelta(weeks=4)


def test_first_order_filters_see_the_customers_history(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: welcome\n    when: {event: order.created, first_order: true}\n"
        "    template: welcome\n",
    )
    result = replay(rules, created("1"), created("2", at=PLACED + days(3)))
    assert [o.order_id for o in result.outcomes] == ["1"]


def test_a_fulfilment_before_its_order_is_planned_when_the_order_comes(tmp_path: Path) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: arrived\n    kind: transactional\n    when: {event: order.fulfilled}\n"
        "    send: {after: 3d}\n    template: arrived\n",
    )
    fulfilled = PLACED + timedelta(hours=1)
    order = created("1")
    order["occurred_at"] = "2026-11-20T12:00:00Z"  # delivered after the fulfilment
    result = replay(rules, order_event("fulfilled", "1", at=fulfilled), order)
    assert timeline(result) == [("arrived", fulfilled + days(3), "planned", None)]


def test_a_birth_date_learned_later_plans_its_message_and_drops_the_fallback(
    tmp_path: Path,
) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: school-desk\n"
        "    when: {event: order.created, items: {category: [kids/furniture]}}\n"
        "    send:\n      anchor: customer.attributes.children[].birth_date\n"
        "      at: +6y9mo\n      fallback: {after: 30d}\n    template: school-desk\n",
    )
    told = customer(attributes={"children": [{"birth_date": "2020-03-01"}]})
    result = replay(
        rules,
        created("1", items=[item("DESK-1", "kids/furniture")]),
        customer_event("updated", told, at=PLACED + days(2)),
    )
    assert timeline(result) == [
        ("school-desk", datetime(2026, 12, 1, 10, tzinfo=UTC), "planned", None),
        ("school-desk", PLACED + days(30), "cancelled", "anchor_date_known"),
    ]


def test_an_order_that_arrives_after_a_later_rebuy_is_skipped_when_planned(
    tmp_path: Path,
) -> None:
    rules = rules_in(
        tmp_path,
        "rules:\n  - id: coffee\n    when: {event: order.created, items: {category: [coffee]}}\n"
        "    send: {after: 4w}\n    skip_if: [rebought_same_sku]\n    template: coffee\n",
    )
    coffee = [item("COFFEE-A", "coffee/beans")]
    late = created("1", items=coffee)
    late["occurred_at"] = iso(PLACED + days(12))  # imported late: placed before order 2
    result = replay(rules, created("2", at=PLACED + days(10), items=coffee), late)
    assert sorted((o.order_id, o.send_at, o.status, o.reason) for o in result.outcomes) == [
        ("1", PLACED + days(28), "skipped", "rebought_same_sku"),
        ("2", PLACED + days(38), "planned", None),
    ]
