"""ELI, CSAT, CES and the response rate, with exact numbers (app/survey/loyalty.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.survey.loyalty import (
    LoyaltyTally,
    answers_tally,
    ces_score,
    csat_score,
    loyalty_index,
    response_rate,
    rule_tally,
)
from app.survey.scales import SCALES, Side, SurveyKind, scale_of


@pytest.mark.parametrize(
    ("kind", "positive", "neutral", "negative"),
    [
        ("nps", [9, 10], [7, 8], [0, 1, 2, 3, 4, 5, 6]),
        ("csat", [4, 5], [3], [1, 2]),
        ("ces", [5, 6, 7], [4], [1, 2, 3]),
    ],
)
def test_each_scale_has_its_sides(
    kind: str, positive: list[int], neutral: list[int], negative: list[int]
) -> None:
    scale = scale_of(kind)
    assert scale.scores == tuple(sorted(positive + neutral + negative))
    assert [s for s in scale.scores if scale.side(s) == Side.POSITIVE] == positive
    assert [s for s in scale.scores if scale.side(s) == Side.NEUTRAL] == neutral
    assert [s for s in scale.scores if scale.side(s) == Side.NEGATIVE] == negative


@pytest.mark.parametrize(("kind", "score"), [("csat", 0), ("csat", 6), ("ces", 8), ("nps", 11)])
def test_an_answer_off_the_scale_is_refused(kind: str, score: int) -> None:
    assert not scale_of(kind).fits(score)
    with pytest.raises(ValueError, match="an answer is"):
        scale_of(kind).side(score)


def test_every_kind_has_a_scale() -> None:
    assert set(SCALES) == set(SurveyKind)


def test_the_loyalty_index_counts_the_silent_with_their_weight() -> None:
    # 100 reached: 40 positive, 10 neutral, 20 negative, 30 silent at 0.5:
    # 40 - 20 - 15 = 5 points.
    assert loyalty_index(reached=100, positive=40, negative=20, silent_penalty=Decimal(15)) == 5.0
    tally = rule_tally(
        reached=100,
        answers=[("nps", 10, 40), ("nps", 8, 10), ("nps", 3, 20)],
        silent_weight=Decimal("0.5"),
    )
    assert (tally.answered, tally.silent, tally.silent_penalty) == (70, 30, Decimal("15.0"))
    assert tally.eli == 5.0
    assert tally.response_rate == 0.7


def test_silent_weight_zero_ignores_the_silent_and_one_counts_them_as_negative() -> None:
    answers = [("csat", 5, 3), ("csat", 1, 1)]
    assert rule_tally(reached=8, answers=answers, silent_weight=Decimal(0)).eli == 25.0
    # (3 - 1 - 4) / 8 = -25
    assert rule_tally(reached=8, answers=answers, silent_weight=Decimal(1)).eli == -25.0


def test_rules_with_other_weights_add_up_with_their_own() -> None:
    # Rule a: 10 reached, 6 positive, 4 silent at 0.5 (penalty 2).
    # Rule b: 10 reached, 2 negative, 8 silent at 0.25 (penalty 2).
    a = rule_tally(reached=10, answers=[("ces", 7, 6)], silent_weight=Decimal("0.5"))
    b = rule_tally(reached=10, answers=[("nps", 0, 2)], silent_weight=Decimal("0.25"))
    both = a + b
    assert (both.reached, both.positive, both.negative) == (20, 6, 2)
    assert both.silent_penalty == Decimal("4.00")
    assert both.eli == 0.0  # (6 - 2 - 4) / 20
    assert both.response_rate == 0.4


def test_rounding_is_half_away_from_zero() -> None:
    # 1 / 3 positive, nothing else: 33.333... -> 33.3; -1/8 -> -12.5; 1/16 -> 6.25 -> 6.3
    assert loyalty_index(reached=3, positive=1, negative=0, silent_penalty=0) == 33.3
    assert loyalty_index(reached=16, positive=1, negative=0, silent_penalty=0) == 6.3
    assert loyalty_index(reached=16, positive=0, negative=1, silent_penalty=0) == -6.3
    assert response_rate(answered=1, reached=3) == 0.3333


def test_nothing_reached_or_answered_is_no_figure() -> None:
    assert loyalty_index(reached=0, positive=0, negative=0, silent_penalty=0) is None
    assert response_rate(answered=0, reached=0) is None
    assert csat_score(satisfied=0, responses=0) is None
    assert ces_score(total=0, responses=0) is None
    assert LoyaltyTally().eli is None


def test_csat_is_the_share_of_four_and_five() -> None:
    tally = LoyaltyTally()
    for score, times in [(5, 2), (4, 1), (3, 1), (1, 2)]:
        tally = tally + answers_tally("csat", score, times=times, in_survey=False)
    assert (tally.csat_responses, tally.csat_satisfied) == (6, 3)
    assert tally.csat == 50.0
    assert csat_score(satisfied=2, responses=3) == 66.7
    # Not in a declared survey: in CSAT, not in the loyalty index.
    assert (tally.answered, tally.positive, tally.eli) == (0, 0, None)


def test_ces_is_the_mean_answer() -> None:
    tally = answers_tally("ces", 7, times=2, in_survey=True) + answers_tally(
        "ces", 2, in_survey=True
    )
    assert tally.ces == 5.33  # 16 / 3
    assert ces_score(total=9, responses=2) == 4.5
