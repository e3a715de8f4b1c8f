"""NPS arithmetic and how answers are classified: pure, no I/O. (Which answer of a message
stands is picked in SQL: tests/survey/test_survey_flow.py and test_survey_stats.py.)"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from app.config import Settings
from app.survey.nps import Group, NpsTally, counts, group_of, net_promoter_score
from app.tracking.classify import EventClass, EventFacts, EventKind, Reason, classify
from app.tracking.service import classify_thresholds

THRESHOLDS = classify_thresholds(Settings(_env_file=None))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("score", "group"),
    [
        (0, Group.DETRACTOR),
        (6, Group.DETRACTOR),
        (7, Group.PASSIVE),
        (8, Group.PASSIVE),
        (9, Group.PROMOTER),
        (10, Group.PROMOTER),
    ],
)
def test_groups(score: int, group: Group) -> None:
    assert group_of(score) == group


@pytest.mark.parametrize("score", [-1, 11])
def test_a_score_outside_the_scale_has_no_group(score: int) -> None:
    with pytest.raises(ValueError, match="0 to 10"):
        group_of(score)


@pytest.mark.parametrize(
    ("promoters", "passives", "detractors", "nps"),
    [
        (0, 0, 0, None),  # no answers: no score, not 0
        (1, 0, 0, 100.0),
        (0, 0, 1, -100.0),
        (0, 3, 0, 0.0),
        (1, 1, 1, 0.0),
        (2, 1, 0, 66.7),
        (1, 2, 0, 33.3),
        (1, 15, 0, 6.3),  # 6.25: half away from zero...
        (0, 15, 1, -6.3),  # ...on both sides
        (22, 10, 8, 35.0),
        (5, 0, 2, 42.9),
    ],
)
def test_net_promoter_score(promoters: int, passives: int, detractors: int, nps: float) -> None:
    assert net_promoter_score(promoters, passives, detractors) == nps


def test_a_tally_adds_scores_up() -> None:
    tally = NpsTally.of([10, 9, 8, 7, 6, 0, 10])
    assert (tally.promoters, tally.passives, tally.detractors) == (3, 2, 2)
    assert (tally.responses, tally.nps) == (7, 14.3)
    assert NpsTally().nps is None


def test_tallies_add_up() -> None:
    tally = NpsTally().add(10, times=3).add(5, times=2) + NpsTally(passives=1)
    assert tally == NpsTally(promoters=3, passives=1, detractors=2)
    assert tally.nps == 16.7
    assert counts("human") and counts("unknown") and not counts("machine")


HOME = ipaddress.ip_address("198.51.100.23")
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
ANSWER = EventFacts(
    kind=EventKind.ANSWER, method="GET", user_agent=CHROME, ip=HOME, seconds_since_sent=3600
)


@pytest.mark.parametrize(
    ("facts", "verdict"),
    [
        (ANSWER, (EventClass.HUMAN, Reason.BROWSER)),
        (replace(ANSWER, other_scores_answered_recently=1), (EventClass.HUMAN, Reason.BROWSER)),
        (
            replace(ANSWER, other_scores_answered_recently=2),
            (EventClass.MACHINE, Reason.SURVEY_BURST),
        ),
        # Other links clicked do not make a survey burst, nor other scores a click burst.
        (replace(ANSWER, other_links_clicked_recently=5), (EventClass.HUMAN, Reason.BROWSER)),
        (replace(ANSWER, seconds_since_sent=3), (EventClass.MACHINE, Reason.PREFETCH)),
        (replace(ANSWER, method="HEAD"), (EventClass.MACHINE, Reason.HEAD_REQUEST)),
        (
            replace(ANSWER, user_agent="python-requests/2.32"),
            (EventClass.MACHINE, Reason.SCANNER_USER_AGENT),
        ),
        (replace(ANSWER, user_agent=""), (EventClass.UNKNOWN, Reason.NO_USER_AGENT)),
    ],
)
def test_answers_are_classified(facts: EventFacts, verdict: tuple[EventClass, Reason]) -> None:
    assert classify(facts, THRESHOLDS) == verdict
    click = replace(facts, kind=EventKind.CLICK, other_scores_answered_recently=0)
    assert classify(click, THRESHOLDS)[1] != Reason.SURVEY_BURST
