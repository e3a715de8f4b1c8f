"""simulate shows sequences: each step with the condition that decided it, totals per rule,
step and reason, and the opens and clicks its input tells of (else none)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.simulate.factories import PLACED, created, customer, iso, item, rules_in
from tests.simulate.test_command import run, write_orders

RULES = """
rules:
  - id: restock
    kind: transactional
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 10d}
    template: diapers-restock
    steps:
      - after: 5d
        template: diapers-restock-nudge
        if: {not_opened: true, not_purchased: same_category}
"""
DIAPERS = item("DIAPER-M-60", "baby/diapers")
REMINDER = PLACED + timedelta(days=10)


def test_each_step_with_its_condition_and_the_totals_per_step_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    orders = write_orders(
        tmp_path,
        created("1", items=[DIAPERS], buyer=customer(1)),
        created("2", items=[DIAPERS], buyer=customer(2)),
        # Customer 2 opened the reminder the evening it came; customer 1 did not.
        {
            "type": "message.opened",
            "occurred_at": iso(REMINDER + timedelta(hours=9)),
            "order": {"id": "2"},
            "rule": "restock",
        },
        # About a message that was never sent: counted, not guessed at.
        {
            "type": "message.clicked",
            "occurred_at": iso(PLACED),
            "order": {"id": "3"},
            "rule": "restock",
        },
    )
    code, out, err = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()]
    nudges = [row for row in rows if row[2:4] == ["restock", "2"]]
    assert [(row[7], row[8], row[9:]) for row in nudges] == [
        ("1", "planned", ["-", "not_opened,", "not_purchased:", "same_category"]),
        ("2", "skipped", ["if_not_opened", "not_opened,", "not_purchased:", "same_category"]),
    ]
    assert ["restock", "1", "2", "0", "0", "0", "0", "2"] in rows  # rule, step, statuses, total
    assert ["restock", "2", "1", "1", "0", "0", "0", "2"] in rows
    assert ["restock", "2", "skipped", "if_not_opened", "1"] in rows  # the reasons
    assert out.splitlines()[-1] == (
        "1 opened/clicked/review line(s) named no message sent before them: ignored"
    )


def test_an_engagement_line_without_its_message_is_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(tmp_path / "rules", RULES)
    orders = write_orders(
        tmp_path,
        created("1", items=[DIAPERS]),
        {"type": "message.opened", "occurred_at": iso(REMINDER), "rule": "restock"},
    )
    code, out, err = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert (code, out) == (1, "")
    assert f"{orders}:2: " in err and "order.id" in err


def test_review_lines_are_checked_and_one_about_no_request_is_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_in(
        tmp_path / "rules",
        """
rules:
  - id: sorry
    kind: transactional
    when: {event: review.answered}
    send: {after: 1h}
    if: {stars: {max: 2}}
    template: thank-you
""",
    )
    review = {
        "type": "review.answered",
        "occurred_at": iso(REMINDER),
        "order": {"id": "1"},
        "rule": "review-request",
    }
    orders = write_orders(tmp_path, created("1", items=[DIAPERS]), {**review, "stars": 6})
    code, out, err = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert (code, out) == (1, "")
    assert f"{orders}:2: stars: " in err
    # Stars on a request that was never sent (no rule asked for one): nothing is planned.
    orders = write_orders(tmp_path, created("1", items=[DIAPERS]), {**review, "stars": 1})
    code, out, err = run(capsys, str(orders), "--rules", str(tmp_path / "rules"))
    assert (code, err) == (0, "")
    assert "sorry" not in out
    assert out.splitlines()[-1] == (
        "1 opened/clicked/review line(s) named no message sent before them: ignored"
    )
