"""The `steps:` and `exit:` of a rule (docs/rules.md, "Sequences"): valid forms, strict
errors at their file:line:col, and step templates checked like a rule's."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.rules.loader import load_rules

HEAD = """rules:
  - id: restock
    when: {event: order.created}
    send: {after: 1w}
    template: good
"""


def load(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "rules.yaml").write_text(text)
    result = load_rules(tmp_path)
    return [error.replace(f"{tmp_path / 'rules.yaml'}:", "") for error in result.errors]


def test_steps_and_exit_load(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        HEAD
        + """    steps:
      - after: 5d
        template: nudge
        if: {not_opened: true, not_purchased: same_category}
      - {after: 30d, from: event, template: last, if: {clicked: true, answered: true}}
    exit: {purchased: any, unsubscribed: true}
"""
    )
    result = load_rules(tmp_path)
    assert not result.errors
    [rule] = result.rules
    assert [step.template for step in rule.steps] == ["nudge", "last"]
    assert rule.templates == ["good", "nudge", "last"]
    second, third = rule.step(2), rule.step(3)
    assert second is not None and third is not None
    assert (second.from_, second.delay.seconds) == ("previous", 5 * 86400)
    assert second.if_ is not None and second.if_.not_purchased == "same_category"
    assert third.from_ == "event" and third.if_ is not None and third.if_.clicked
    assert rule.step(1) is None and rule.step(4) is None
    assert rule.exit is not None and rule.exit.purchased == "any" and rule.exit.unsubscribed
    assert rule.reads_purchases and not rule.checks_rebuy


def test_a_rule_without_steps_is_a_sequence_of_one(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(HEAD)
    [rule] = load_rules(tmp_path).rules
    assert rule.steps == [] and rule.exit is None and rule.templates == ["good"]
    assert not rule.reads_purchases


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "    steps:\n      - {after: 5d, template: nudge, iff: {opened: true}}\n",
            "7:38: unknown key 'iff' (a typo?)",
        ),
        (
            "    steps:\n      - {after: 5d, template: nudge, if: {seen: true}}\n",
            "7:43: unknown key 'seen' (a typo?)",
        ),
        (
            "    steps:\n      - {after: 5d, template: nudge, if: {opened: false}}\n",
            "7:51: rules.0.steps.0.if.opened: Input should be True",
        ),
        (
            "    steps:\n      - {after: 5d, template: nudge, if: {purchased: same_brand}}\n",
            "7:54: rules.0.steps.0.if.purchased: Input should be 'any', 'same_sku' or "
            "'same_category'",
        ),
        (
            "    steps:\n      - {after: 5d, template: nudge,"
            " if: {opened: true, not_opened: true}}\n",
            "7:42: rules.0.steps.0.if: Value error, 'opened' and 'not_opened' can never both",
        ),
        (
            "    steps:\n      - {after: 5d, template: nudge, if: {}}\n",
            "7:42: rules.0.steps.0.if: Value error, give a condition",
        ),
        (
            "    steps:\n      - {after: -2d, template: nudge}\n",
            "7:17: rules.0.steps.0.after: Value error, a step comes after, not before",
        ),
        (
            "    steps:\n      - {after: 5d, from: order, template: nudge}\n",
            "7:27: rules.0.steps.0.from: Input should be 'previous' or 'event'",
        ),
        ("    steps:\n      - {after: 5d}\n", "7:9: rules.0.steps.0.template: Field required"),
        (
            "    steps:\n      - {after: 5d, template: Nudge!}\n",
            "7:31: rules.0.steps.0.template: Value error, use lower-case letters",
        ),
        ("    exit: {}\n", "6:11: rules.0.exit: Value error, give purchased, unsubscribed or both"),
        (
            "    exit: {unsubscribed: yes_please}\n",
            "6:26: rules.0.exit.unsubscribed: Input should be True",
        ),
    ],
)
def test_bad_steps_say_what_is_wrong_and_where(tmp_path: Path, snippet: str, expected: str) -> None:
    [error] = load(tmp_path, HEAD + snippet)
    assert error.startswith(expected), error


def test_step_templates_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    (templates / "good" / "en").mkdir(parents=True)
    (templates / "good" / "en" / "subject.txt").write_text("Hi {{ customer.first_name }}")
    (templates / "good" / "en" / "body.html").write_text("<p>{{ items[0].name }}</p>")
    (rules / "shop.yaml").write_text(
        HEAD
        + """    steps:
      - after: 5d
        template: good
      - after: 5d
        template: missing
"""
    )
    code = main(["rules", "check", str(rules), "--templates", str(templates)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert [line.replace(f"{rules}/", "") for line in lines] == [
        "shop.yaml:10:19: template 'missing' has no en/subject.txt and body.html under "
        f"{templates} (the default locale must exist)"
    ]
