"""The survey stats' shapes (`GET /api/v1/stats/nps`: NPS, the loyalty index, CSAT, CES and
the response rate); docs/stats.md explains each figure."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NpsBy = Literal["rule", "category", "month", "week", "day"]

EXAMPLE_ROW: dict[str, Any] = {
    "key": "delivery-follow-up",
    "responses": 40,
    "promoters": 22,
    "passives": 10,
    "detractors": 8,
    "nps": 35.0,
    "surveys": 120,
    "answered": 48,
    "response_rate": 0.4,
    "positive": 26,
    "neutral": 12,
    "negative": 10,
    "silent": 72,
    "eli": -15.0,
    "csat": 80.0,
    "csat_responses": 5,
    "ces": None,
    "ces_responses": 0,
}


class NpsRow(BaseModel):
    key: str | None = Field(
        description="the rule's id; a product category (null: orders with no categorised "
        "item); the month, YYYY-MM; the ISO week, YYYY-Www; or the day, YYYY-MM-DD"
    )
    responses: int = Field(ge=0, description="messages with a counted answer")
    promoters: int = Field(ge=0, description="answers 9-10")
    passives: int = Field(ge=0, description="answers 7-8")
    detractors: int = Field(ge=0, description="answers 0-6")
    nps: float | None = Field(
        description="% promoters - % detractors, one decimal; null without responses"
    )
    # The loyalty figures count the rules that declare a `survey` (only their mail is known
    # to carry one), each rule's silent weighted by its `silent_weight`.
    surveys: int = Field(
        default=0, ge=0, description="surveys that reached the customer (sent, no hard bounce)"
    )
    answered: int = Field(default=0, ge=0, description="of `surveys`, those with a counted answer")
    response_rate: float | None = Field(
        default=None, description="answered / surveys, four decimals; null without surveys"
    )
    positive: int = Field(
        default=0, ge=0, description="answers on the positive side (NPS 9-10, CSAT 4-5, CES 5-7)"
    )
    neutral: int = Field(
        default=0, ge=0, description="answers in the middle (NPS 7-8, CSAT 3, CES 4)"
    )
    negative: int = Field(
        default=0, ge=0, description="answers on the negative side (NPS 0-6, CSAT 1-2, CES 1-3)"
    )
    silent: int = Field(default=0, ge=0, description="surveys - answered")
    eli: float | None = Field(
        default=None,
        description="Emotional Loyalty Index: % positive - % negative - silent_weight x % "
        "silent, of `surveys`, one decimal; null without surveys",
    )
    csat: float | None = Field(
        default=None, description="% of CSAT answers that are 4 or 5, one decimal; null without"
    )
    csat_responses: int = Field(default=0, ge=0, description="messages with a counted CSAT answer")
    ces: float | None = Field(
        default=None, description="mean CES answer (1-7, 7 = very easy), two decimals; null without"
    )
    ces_responses: int = Field(default=0, ge=0, description="messages with a counted CES answer")


class NpsStats(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01",
                    "to": "2026-11-30",
                    "by": "rule",
                    "rows": [EXAMPLE_ROW],
                }
            ]
        },
    )

    from_: date = Field(alias="from", description="first day (UTC) the messages went, inclusive")
    to: date = Field(description="last day (UTC), inclusive")
    by: NpsBy
    rows: list[NpsRow] = Field(description="one row per key, in key order (null last)")


class AnswerOut(BaseModel):
    """One survey answer as it came (`GET /api/v1/survey/answers`)."""

    id: int = Field(description="the answer's id, newest first; `cursor` pages by it")
    message_id: int = Field(description="the surveyed message (`GET /api/v1/messages`)")
    rule: str
    variant: str | None
    kind: Literal["nps", "csat", "ces"]
    score: int = Field(description="on the kind's scale: NPS 0-10, CSAT 1-5, CES 1-7")
    side: Literal["positive", "neutral", "negative"] = Field(
        description="the score's side of its scale, as the loyalty index counts it"
    )
    class_: str = Field(
        alias="class", description="human, unknown (both counted), or machine (never counted)"
    )
    reason: str = Field(description="why it was classified so (docs/tracking.md)")
    answered_at: datetime
    comment: str | None = Field(description="what the customer wrote on the thank-you page")
    commented_at: datetime | None

    model_config = ConfigDict(populate_by_name=True)


class AnswerPage(BaseModel):
    items: list[AnswerOut]
    next_cursor: int | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )
