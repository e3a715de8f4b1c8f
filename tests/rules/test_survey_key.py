"""`survey:` on a rule: kind, silent_weight and reward, what the loader accepts and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.rules.loader import load_rules
from app.rules.model import REWARD_SUFFIX

RULE = (
    "rules:\n"
    "  - id: check-in\n"
    "    kind: transactional\n"
    "    when: {event: order.created}\n"
    "    template: delivery-follow-up\n"
)


def errors(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "rules.yaml").write_text(text)
    return [line.replace(f"{tmp_path}/", "") for line in load_rules(tmp_path).errors]


def test_a_rule_without_a_survey_is_as_before(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULE)
    rules = load_rules(tmp_path)
    [rule] = rules.rules
    assert rule.survey is None
    assert rules.by_id("check-in" + REWARD_SUFFIX) is None


def test_the_full_survey_loads_and_its_reward_is_a_rule_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        RULE + "    survey: {kind: csat, silent_weight: 0.25, reward: {coupon: {pool: THANKS}}}\n"
    )
    rules = load_rules(tmp_path)
    assert rules.errors == ()
    [rule] = rules.rules
    assert rule.survey is not None
    assert (rule.survey.kind, rule.survey.silent_weight) == ("csat", 0.25)
    reward = rules.by_id("check-in.reward")
    assert reward is not None and reward.template == "survey-reward"
    assert reward.kind == "transactional" and reward.survey is None
    assert reward.coupon is not None
    assert (reward.coupon.pool, reward.coupon.when_empty) == ("THANKS", "skip")
    assert reward.version != rule.version
    # It matches no event: only the answer plans it.
    assert [found.id for found in rules.for_event("order.created")] == ["check-in"]
    assert rules.sending_rule_ids == {"check-in", "check-in.reward"}


def test_defaults_are_nps_and_half_a_negative(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULE + "    survey: {}\n")
    [rule] = load_rules(tmp_path).rules
    assert rule.survey is not None
    assert (rule.survey.kind, rule.survey.silent_weight, rule.survey.reward) == ("nps", 0.5, None)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "    survey: {kind: stars}\n",
            "rules.yaml:6:20: rules.0.survey.kind: Input should be 'nps', 'csat' or 'ces'",
        ),
        (
            "    survey: {silent_weight: 1.5}\n",
            "rules.yaml:6:29: rules.0.survey.silent_weight: Input should be less than or equal",
        ),
        (
            "    survey:\n      kind: nps\n      reward: {coupon: {}}\n",
            "rules.yaml:8:24: rules.0.survey.reward.coupon.pool: Field required",
        ),
        (
            "    survey: {reward: {pool: THANKS}}\n",
            "rules.yaml:6:23: unknown key 'pool' (a typo?)",
        ),
        (
            "    survey: {kind: nps, weight: 0.5}\n",
            "rules.yaml:6:25: unknown key 'weight' (a typo?)",
        ),
    ],
)
def test_bad_surveys_say_where_and_what(tmp_path: Path, snippet: str, message: str) -> None:
    found = errors(tmp_path, RULE + snippet)
    assert any(line.startswith(message) for line in found), found


def test_the_reward_template_is_checked_where_it_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "shop.yaml").write_text(
        RULE + "    survey:\n      reward: {coupon: {pool: THANKS}, template: no-such-mail}\n"
    )
    assert main(["rules", "check", str(rules)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{rules}/shop.yaml:7:")
    assert "template 'no-such-mail' has no en/subject.txt" in line


def test_the_shipped_reward_template_renders_with_and_without_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "shop.yaml").write_text(
        RULE + "    survey: {reward: {coupon: {pool: THANKS, when_empty: send}}}\n"
    )
    assert main(["rules", "check", str(rules)]) == 0, capsys.readouterr().out
