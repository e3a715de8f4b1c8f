from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.planner.planner import plan_order_event
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet, load_rules

PLACED = datetime(2026, 11, 20, 9, 59, tzinfo=UTC)


def rules_from(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(text)
    rule_set = load_rules(tmp_path)
    assert rule_set.errors == ()
    return rule_set


def order(status: str = "open", *items: ItemFacts) -> OrderFacts:
    return OrderFacts(
        id=7, status=status, placed_at=PLACED, items=items or (ItemFacts("X-1", "misc"),)
    )


def test_thank_you_is_planned_from_the_order_time(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        "rules:\n  - id: thanks\n    kind: transactional\n    when: {event: order.created}\n"
        "    send: {after: 0m, expires: 2d}\n    template: thank-you\n",
    )
    [planned] = plan_order_event(
        event="order.created",
        occurred_at=PLACED + timedelta(hours=3),
        order=order(),
        customer_id=3,
        rules=rules,
    )
    assert planned.send_at == PLACED
    assert planned.expires_at == PLACED + timedelta(days=2)
    assert planned.dedupe_key == "thanks:order:7:customer:3"
    assert (planned.status, planned.kind, planned.template) == (
        "scheduled",
        "transactional",
        "thank-you",
    )


def test_items_filter_and_event(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        "rules:\n"
        "  - id: diapers\n    when: {event: order.created, items: {sku: ['DIAPER-*']}}\n"
        "    send: {after: 1w}\n    template: replenish\n"
        "  - id: furniture\n    when: {event: order.created, items: {category: [kids/furniture]}}\n"
        "    template: school-desk\n"
        "  - id: after-delivery\n    when: {event: order.fulfilled}\n    send: {after: 3d}\n"
        "    template: follow-up\n",
    )
    diaper = order("open", ItemFacts("DIAPER-M-60", "baby/diapers"))
    bed = order("open", ItemFacts("BED-1", "kids/furniture/beds"))
    planned = plan_order_event(
        event="order.created", occurred_at=PLACED, order=diaper, customer_id=1, rules=rules
    )
    assert [(p.rule_id, p.send_at - PLACED) for p in planned] == [("diapers", timedelta(weeks=1))]
    planned = plan_order_event(
        event="order.created", occurred_at=PLACED, order=bed, customer_id=1, rules=rules
    )
    assert [p.rule_id for p in planned] == ["furniture"]
    fulfilled_at = PLACED + timedelta(days=2)
    planned = plan_order_event(
        event="order.fulfilled", occurred_at=fulfilled_at, order=bed, customer_id=1, rules=rules
    )
    assert [(p.rule_id, p.send_at) for p in planned] == [
        ("after-delivery", fulfilled_at + timedelta(days=3))
    ]


def test_cancelled_order_is_planned_cancelled(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        "rules:\n  - id: thanks\n    when: {event: order.created}\n    template: thank-you\n",
    )
    [planned] = plan_order_event(
        event="order.created",
        occurred_at=PLACED,
        order=order("cancelled"),
        customer_id=1,
        rules=rules,
    )
    assert (planned.status, planned.reason) == ("cancelled", "order_cancelled")


def test_loader_reports_typos_bad_durations_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - id: one\n    when: {event: order.created}\n"
        "    sned: {after: 1d}\n    template: t\n"
        "  - id: two\n    when: {event: order.created}\n"
        "    send: {after: 2 weeks}\n    template: t\n"
    )
    (tmp_path / "b.yaml").write_text(
        "rules:\n  - id: one\n    when: {event: order.created}\n    template: t\n"
        "  - !!python/object/apply:os.system ['echo pwned']\n"
    )
    (tmp_path / "c.yaml").write_text(
        "rules:\n  - id: one-more\n    when: {event: order.created}\n    template: t\n"
        "  - id: one-more\n    when: {event: order.created}\n    template: t\n"
    )
    errors = [error.replace(f"{tmp_path}/", "") for error in load_rules(tmp_path).errors]
    assert errors[0] == "a.yaml:4:5: unknown key 'sned' (a typo?)"
    assert errors[1].startswith("a.yaml:8:19: rules.1.send.after: Value error, bad duration")
    assert errors[2].startswith("b.yaml:5:5: invalid YAML: could not determine a constructor")
    assert errors[3] == "c.yaml:5:9: rule id 'one-more' is already defined in c.yaml"
    assert len(errors) == 4


def test_rule_version_changes_only_with_its_rule(tmp_path: Path) -> None:
    base = "rules:\n  - id: a\n    when: {event: order.created}\n    template: t\n"
    first = rules_from(
        tmp_path, base + "  - id: b\n    when: {event: order.created}\n    template: t\n"
    )
    second = rules_from(
        tmp_path, base + "  - id: b\n    when: {event: order.created}\n    template: u\n"
    )
    assert first.rules[0].version == second.rules[0].version
    assert first.rules[1].version != second.rules[1].version
    assert first.version != second.version


def test_customer_filters(tmp_path: Path) -> None:
    from app.planner.planner import matching_items
    from app.rules.facts import CustomerFacts

    rules = rules_from(
        tmp_path,
        "rules:\n"
        "  - id: russian\n    when: {event: order.created, customer: {locale: [ru]}}\n"
        "    template: t\n"
        "  - id: dach-vip\n"
        "    when: {event: order.created, customer: {country: [DE, AT], tags: [vip]}}\n"
        "    template: t\n",
    )

    def matched(customer: CustomerFacts | None) -> set[str]:
        return {rule.id for rule in rules.rules if matching_items(rule, order(), customer)}

    assert matched(CustomerFacts(locale="ru-RU", country="DE", tags=("vip",))) == {
        "russian",
        "dach-vip",
    }
    assert matched(CustomerFacts(locale="ru_RU", country="FR", tags=("vip",))) == {"russian"}
    assert matched(CustomerFacts(locale="rue", country="AT", tags=("new",))) == set()
    assert matched(None) == set()
