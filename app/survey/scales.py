"""The survey kinds and their answer scales, and which side of a scale an answer is on (pure).

| kind | question | scale | positive | negative |
|---|---|---|---|---|
| nps | would you recommend us? | 0-10 | 9-10 (promoters) | 0-6 (detractors) |
| csat | how satisfied are you? | 1-5 | 4-5 (satisfied) | 1-2 (dissatisfied) |
| ces | how easy was it? (7 = very easy) | 1-7 | 5-7 (easy) | 1-3 (difficult) |

CES asks how easy, not how much effort (the CES 2.0 wording), so that on every kind a
higher answer is the better one; its neutral middle is 4.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SurveyKind(enum.StrEnum):
    NPS = "nps"
    CSAT = "csat"
    CES = "ces"


class Side(enum.StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


@dataclass(frozen=True)
class Scale:
    low: int
    high: int
    positive_from: int  # this answer and above are positive
    negative_to: int  # this answer and below are negative

    @property
    def scores(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1))

    def fits(self, score: int) -> bool:
        return self.low <= score <= self.high

    def side(self, score: int) -> Side:
        if not self.fits(score):
            raise ValueError(f"an answer is {self.low} to {self.high}, not {score}")
        if score >= self.positive_from:
            return Side.POSITIVE
        return Side.NEGATIVE if score <= self.negative_to else Side.NEUTRAL


SCALES: dict[SurveyKind, Scale] = {
    SurveyKind.NPS: Scale(low=0, high=10, positive_from=9, negative_to=6),
    SurveyKind.CSAT: Scale(low=1, high=5, positive_from=4, negative_to=2),
    SurveyKind.CES: Scale(low=1, high=7, positive_from=5, negative_to=3),
}


def scale_of(kind: str) -> Scale:
    return SCALES[SurveyKind(kind)]
