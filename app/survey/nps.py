"""NPS arithmetic and which answers count (pure, no I/O).

"Would you recommend us?" is answered 0-10: 9-10 are promoters, 7-8 passives, 0-6
detractors. NPS is % promoters minus % detractors of the counted answers, one answer per
message (its latest counted one, picked in SQL: app/survey/repository.py), rounded half
away from zero to one decimal; null with no answers.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.tracking.classify import EventClass

SCORES = tuple(range(11))
# Machines never count. `unknown` does: the burst and prefetch rules already catch scanners
# that follow every link, and an unusual client (an in-app browser, a privacy tool) picking
# one score out of eleven is far likelier a person than a machine (docs/tracking.md).
COUNTED_CLASSES = frozenset({EventClass.HUMAN.value, EventClass.UNKNOWN.value})
_TENTH = Decimal("0.1")


class Group(enum.StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def is_score(value: int) -> bool:
    return 0 <= value <= 10


def group_of(score: int) -> Group:
    if not is_score(score):
        raise ValueError(f"a score is 0 to 10, not {score}")
    if score >= 9:
        return Group.PROMOTER
    return Group.PASSIVE if score >= 7 else Group.DETRACTOR


def counts(event_class: str) -> bool:
    """Whether an answer of this class is a person's, and so goes into NPS."""
    return event_class in COUNTED_CLASSES


@dataclass(frozen=True)
class NpsTally:
    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        return net_promoter_score(self.promoters, self.passives, self.detractors)

    def add(self, score: int, *, times: int = 1) -> NpsTally:
        """The tally with `times` more answers of `score`."""
        group = group_of(score)
        return NpsTally(
            promoters=self.promoters + times * (group == Group.PROMOTER),
            passives=self.passives + times * (group == Group.PASSIVE),
            detractors=self.detractors + times * (group == Group.DETRACTOR),
        )

    def __add__(self, other: NpsTally) -> NpsTally:
        return NpsTally(
            promoters=self.promoters + other.promoters,
            passives=self.passives + other.passives,
            detractors=self.detractors + other.detractors,
        )

    @classmethod
    def of(cls, scores: Iterable[int]) -> NpsTally:
        tally = cls()
        for score in scores:
            tally = tally.add(score)
        return tally


def net_promoter_score(promoters: int, passives: int, detractors: int) -> float | None:
    """% promoters - % detractors, to one decimal (half away from zero); None without answers."""
    responses = promoters + passives + detractors
    if responses == 0:
        return None
    exact = Decimal(100 * (promoters - detractors)) / Decimal(responses)
    return float(exact.quantize(_TENTH, rounding=ROUND_HALF_UP))
