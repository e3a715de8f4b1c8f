"""The NPS API's shapes (`GET /api/v1/stats/nps`); docs/stats.md explains each figure."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NpsBy = Literal["rule", "category", "month"]

EXAMPLE_ROW: dict[str, Any] = {
    "key": "delivery-follow-up",
    "responses": 40,
    "promoters": 22,
    "passives": 10,
    "detractors": 8,
    "nps": 35.0,
}


class NpsRow(BaseModel):
    key: str | None = Field(
        description="the rule's id; a product category (null: orders with no categorised "
        "item); or the month, YYYY-MM"
    )
    responses: int = Field(ge=0, description="messages with a counted answer")
    promoters: int = Field(ge=0, description="answers 9-10")
    passives: int = Field(ge=0, description="answers 7-8")
    detractors: int = Field(ge=0, description="answers 0-6")
    nps: float | None = Field(
        description="% promoters - % detractors, one decimal; null without responses"
    )


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
