"""learned, limit/limits, priority, variants and holdout: what the loader accepts and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.rules.loader import load_rules

BASE = "  - id: r\n    when: {event: order.created}\n"


def errors(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    (tmp_path / name).write_text(text)
    return "\n".join(load_rules(tmp_path).errors)


def test_the_full_format_loads(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "limits:\n  marketing: {max: 2, per: 7d}\nrules:\n"
        "  - id: coffee\n    when: {event: order.created, items: {category: [coffee]}}\n"
        "    send: {learned: {fallback: 4w..5w}, expires: 7d}\n"
        "    variants: [{template: a, weight: 50}, {template: b, weight: 50}]\n"
        "    holdout: 10%\n    priority: 70\n    limit: {max: 1, per: 30d}\n"
    )
    rules = load_rules(tmp_path)
    assert rules.errors == ()
    [rule] = rules.rules
    assert rule.holdout == 10 and rule.priority == 70 and rule.templates == ["a", "b"]
    assert rule.limit is not None and rule.limit.max == 1
    assert rules.limits["marketing"].per == "7d"


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "    template: a\n    variants: [{template: b}]\n",
            "give either 'template' or 'variants'",
        ),
        ("    send: {after: 1d}\n", "give either 'template' or 'variants'"),
        ("    variants: []\n", "needs at least one variant"),
        ("    variants: [{template: a}, {template: a}]\n", "distinct templates or names"),
        ("    variants: [{template: a, weight: 0}]\n", "a weight above 0"),
        ("    template: a\n    holdout: 100%\n", "holdout: Input should be less than 100"),
        ("    template: a\n    holdout: ten%\n", "bad percentage 'ten%'"),
        ("    template: a\n    kind: transactional\n    holdout: 5%\n", "transactional mail"),
        ("    template: a\n    limit: {max: 0, per: 7d}\n", "limit.max"),
        ("    template: a\n    limit: {max: 1, per: 0d}\n", "the span must be positive"),
        ("    template: a\n    limit: {max: 1, every: 7d}\n", "unknown key 'every'"),
        ("    template: a\n    priority: 101\n", "priority: Input should be less than"),
        (
            "    template: a\n    send: {learned: {fallback: 4w, lead: 1mo}}\n",
            "give the lead in d, w or h",
        ),
        ("    template: a\n    send: {learned: {}}\n", "learned.fallback: Field required"),
        (
            "    template: a\n    send: {learned: {fallback: 4w}, after: 1d}\n",
            "not after and learned",
        ),
    ],
)
def test_bad_rules_say_what_is_wrong(tmp_path: Path, snippet: str, message: str) -> None:
    assert message in errors(tmp_path, "rules:\n" + BASE + snippet)


def test_learned_needs_an_order_event(tmp_path: Path) -> None:
    text = (
        "rules:\n  - id: b\n    when: {event: birthday}\n"
        "    send: {learned: {fallback: 4w}}\n    template: a\n"
    )
    assert "a birthday rule is timed with 'at'" in errors(tmp_path, text)


def test_files_may_repeat_a_limit_but_not_contradict_it(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("limits:\n  marketing: {max: 2, per: 7d}\n")
    assert errors(tmp_path, "limits:\n  marketing: {max: 2, per: 7d}\n", "b.yaml") == ""
    problem = errors(tmp_path, "rules: []\nlimits:\n  marketing: {max: 3, per: 7d}\n", "b.yaml")
    assert problem.endswith(
        "b.yaml:3:14: limits.marketing is 3 per 7d here but 2 per 7d in another file; give it once"
    )
    sms = errors(tmp_path, "limits:\n  sms: {max: 1, per: 1d}\n", "c.yaml")
    assert "c.yaml:2:3: limits.sms: Input should be 'marketing' or 'transactional'" in sms
