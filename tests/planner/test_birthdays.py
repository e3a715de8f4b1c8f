"""Birthdays: every year, 29 February on 28 February in other years, local time, once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.planner.dates import birthday_in, plan_birthdays
from app.rules.loader import RuleSet, load_rules

BIRTHDAY_RULE = """
rules:
  - id: birthday
    when: {event: birthday}
    send: {at: -3d, time: "10:00"}
    template: birthday
"""


def rules_from(tmp_path: Path, text: str = BIRTHDAY_RULE) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(text)
    rule_set = load_rules(tmp_path)
    assert rule_set.errors == (), rule_set.errors
    return rule_set


@pytest.mark.parametrize(
    ("year", "expected"),
    [(2027, date(2027, 2, 28)), (2028, date(2028, 2, 29)), (2100, date(2100, 2, 28))],
)
def test_29_february(year: int, expected: date) -> None:
    assert birthday_in(date(1992, 2, 29), year) == expected


def plan(rules: RuleSet, *, birthday: date, now: datetime, tz: str = "Europe/Moscow") -> list:
    return plan_birthdays(
        rules=rules,
        customer_id=7,
        birthday=birthday,
        tz=ZoneInfo(tz),
        now=now,
        horizon=timedelta(days=30),
    )


def test_three_days_before_at_ten_local(tmp_path: Path) -> None:
    rules = rules_from(tmp_path)
    [message] = plan(rules, birthday=date(1990, 3, 10), now=datetime(2027, 2, 20, tzinfo=UTC))
    assert message.send_at == datetime(2027, 3, 7, 7, 0, tzinfo=UTC)  # 10:00 Moscow
    assert message.dedupe_key == "birthday:birthday:2027:customer:7"


@pytest.mark.parametrize(("year", "day"), [(2027, 25), (2028, 26)])
def test_leap_day_birthdays_in_2027_and_2028(tmp_path: Path, year: int, day: int) -> None:
    rules = rules_from(tmp_path)
    [message] = plan(rules, birthday=date(1992, 2, 29), now=datetime(year, 2, 1, tzinfo=UTC))
    # 28 Feb 2027 − 3 days = 25 Feb; 29 Feb 2028 − 3 days = 26 Feb.
    assert message.send_at.astimezone(ZoneInfo("Europe/Moscow")).date() == date(year, 2, day)


def test_daily_runs_plan_one_message_per_occurrence(tmp_path: Path) -> None:
    rules = rules_from(tmp_path)
    keys = set()
    for day in range(400):  # a daily job over more than a year
        now = datetime(2026, 12, 1, 3, tzinfo=UTC) + timedelta(days=day)
        keys |= {m.dedupe_key for m in plan(rules, birthday=date(1990, 1, 15), now=now)}
    assert keys == {"birthday:birthday:2027:customer:7", "birthday:birthday:2028:customer:7"}


def test_outside_the_horizon_nothing_is_planned(tmp_path: Path) -> None:
    rules = rules_from(tmp_path)
    assert plan(rules, birthday=date(1990, 8, 1), now=datetime(2027, 2, 1, tzinfo=UTC)) == []


def test_birthday_rules_refuse_order_timing_and_filters(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "  - id: a\n    when: {event: birthday}\n    send: {after: 1d}\n    template: t\n"
        "  - id: b\n    when: {event: birthday, first_order: true}\n    template: t\n"
        "  - id: c\n    when: {event: order.created}\n    send: {at: -1d}\n    template: t\n"
    )
    errors = "\n".join(load_rules(tmp_path).errors)
    assert "timed with 'at'" in errors
    assert "apply to order events" in errors
    assert "'at' needs an 'anchor' date on order events" in errors
