"""The operator API's intake failures."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class IntakeFailureOut(BaseModel):
    """An authentic delivery that could not be mapped; `replayed_at` is set once it went
    through (`aftersale intake replay`, or a redelivery)."""

    id: int
    source: str
    shop: str
    topic: str
    delivery_id: str
    received_at: datetime
    error: str
    attempts: int
    replayed_at: datetime | None
    replay_result: str | None


class IntakeFailurePage(BaseModel):
    items: list[IntakeFailureOut]
    next_cursor: int | None
