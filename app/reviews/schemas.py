"""The shapes of `GET /api/v1/reviews` and `GET /api/v1/stats/reviews` (docs/stats.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReviewOut(BaseModel):
    """One product review as it stands (`GET /api/v1/reviews`)."""

    model_config = ConfigDict(populate_by_name=True)

    id: int = Field(description="the review's id, newest first; `cursor` pages by it")
    message_id: int = Field(description="the review request (`GET /api/v1/messages`)")
    product_id: str | None = Field(description="the platform's product id, when the order said")
    variant_id: str | None = Field(description="the platform's variant id, when the order said")
    sku: str | None
    name: str = Field(description="the item's name as ordered")
    category: str | None
    stars: int = Field(ge=1, le=5)
    class_: str = Field(alias="class", description="human (counted) or machine, unknown")
    reason: str = Field(description="why it was classified so (docs/tracking.md)")
    answered_at: datetime
    comment: str | None = Field(description="what the customer wrote; erased with them")
    commented_at: datetime | None


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    next_cursor: int | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )


class ReviewStatsRow(BaseModel):
    key: str | None = Field(
        description="the product (platform id, else sku) or the category; null: none known"
    )
    name: str | None = Field(default=None, description="the product's name (by product)")
    reviews: int = Field(ge=0, description="people's reviews (machine clicks never count)")
    average: float = Field(description="mean stars, two decimals")
    stars_1: int = Field(ge=0)
    stars_2: int = Field(ge=0)
    stars_3: int = Field(ge=0)
    stars_4: int = Field(ge=0)
    stars_5: int = Field(ge=0)


class ReviewStats(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", description="first day (UTC) of the reviews, inclusive")
    to: date = Field(description="last day (UTC), inclusive")
    by: Literal["product", "category"]
    rows: list[ReviewStatsRow] = Field(description="one row per key, in key order (null last)")
