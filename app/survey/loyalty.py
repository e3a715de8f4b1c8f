"""The Emotional Loyalty Index, CSAT, CES and the response rate (pure, no I/O).

ELI = % positive answers - % negative answers - silent_weight x % silent, all over the
surveys that reached the customer (sent, no hard bounce). The silent (reached, no counted
answer) count against loyalty, corrected by the rule's `silent_weight` (0.5 by default):
half a detractor each. Sides per kind are in app/survey/scales.py. Across rules with other
weights (a category, a month) each rule's silent are weighted by its own coefficient.

CSAT is % of CSAT answers 4-5; CES the mean of CES answers (1-7, 7 = very easy); the
response rate is answered / reached. Percentages are rounded half away from zero to one
decimal, CES to two, the rate to four (as the other rates); None when there is nothing to
divide by.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.survey.scales import Side, SurveyKind, scale_of

DEFAULT_SILENT_WEIGHT = Decimal("0.5")
_TENTH = Decimal("0.1")
_HUNDREDTH = Decimal("0.01")
_RATE = Decimal("0.0001")


def _rounded(value: Decimal, step: Decimal) -> float:
    return float(value.quantize(step, rounding=ROUND_HALF_UP))


def loyalty_index(
    *, reached: int, positive: int, negative: int, silent_penalty: Decimal | int
) -> float | None:
    """ELI in points: 100 x (positive - negative - silent_penalty) / reached, where
    silent_penalty is the sum of silent_weight x silent over the rules counted."""
    if reached <= 0:
        return None
    exact = Decimal(100) * (positive - negative - Decimal(silent_penalty)) / reached
    return _rounded(exact, _TENTH)


def response_rate(*, answered: int, reached: int) -> float | None:
    if reached <= 0:
        return None
    return _rounded(Decimal(answered) / reached, _RATE)


def csat_score(*, satisfied: int, responses: int) -> float | None:
    """% of CSAT answers that are 4 or 5."""
    if responses <= 0:
        return None
    return _rounded(Decimal(100 * satisfied) / responses, _TENTH)


def ces_score(*, total: int, responses: int) -> float | None:
    """The mean CES answer (1-7), two decimals."""
    if responses <= 0:
        return None
    return _rounded(Decimal(total) / responses, _HUNDREDTH)


@dataclass(frozen=True)
class LoyaltyTally:
    """Surveys reached and answered, their answers by side, and the CSAT and CES sums.

    `reached`, `answered`, `positive`, `negative` and `silent_penalty` count only rules that
    declare a survey (only their messages are known to carry one); CSAT and CES count every
    answer of their kind.
    """

    reached: int = 0
    answered: int = 0
    positive: int = 0
    neutral: int = 0
    negative: int = 0
    silent_penalty: Decimal = Decimal(0)
    csat_responses: int = 0
    csat_satisfied: int = 0
    ces_responses: int = 0
    ces_total: int = 0

    @property
    def shows(self) -> bool:
        """Whether there is anything to show: a survey reached, or a CSAT or CES answer."""
        return bool(self.reached or self.csat_responses or self.ces_responses)

    @property
    def silent(self) -> int:
        return max(0, self.reached - self.answered)

    @property
    def eli(self) -> float | None:
        return loyalty_index(
            reached=self.reached,
            positive=self.positive,
            negative=self.negative,
            silent_penalty=self.silent_penalty,
        )

    @property
    def response_rate(self) -> float | None:
        return response_rate(answered=self.answered, reached=self.reached)

    @property
    def csat(self) -> float | None:
        return csat_score(satisfied=self.csat_satisfied, responses=self.csat_responses)

    @property
    def ces(self) -> float | None:
        return ces_score(total=self.ces_total, responses=self.ces_responses)

    def __add__(self, other: LoyaltyTally) -> LoyaltyTally:
        return LoyaltyTally(
            *(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__)
        )


def answers_tally(kind: str, score: int, *, times: int = 1, in_survey: bool) -> LoyaltyTally:
    """`times` answers of `score` to a `kind` survey; `in_survey`: of a rule that declares
    its survey (so the answer goes into ELI and the response rate)."""
    side = scale_of(kind).side(score)
    csat = kind == SurveyKind.CSAT
    ces = kind == SurveyKind.CES
    counted = times if in_survey else 0
    return LoyaltyTally(
        answered=counted,
        positive=counted * (side == Side.POSITIVE),
        neutral=counted * (side == Side.NEUTRAL),
        negative=counted * (side == Side.NEGATIVE),
        csat_responses=times * csat,
        csat_satisfied=times * (csat and side == Side.POSITIVE),
        ces_responses=times * ces,
        ces_total=times * score * ces,
    )


def rule_tally(
    *, reached: int, answers: Iterable[tuple[str, int, int]], silent_weight: Decimal
) -> LoyaltyTally:
    """One rule's tally: `reached` surveys and its answers (kind, score, times), the silent
    weighted by the rule's coefficient."""
    tally = LoyaltyTally(reached=reached)
    for kind, score, times in answers:
        tally = tally + answers_tally(kind, score, times=times, in_survey=True)
    penalty = silent_weight * tally.silent
    return LoyaltyTally(**{**tally.__dict__, "silent_penalty": penalty})
