"""What the privacy requests API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErasureOut(BaseModel):
    erased: bool
    messages_cancelled: int = Field(description="waiting messages of theirs now cancelled")


class PrivacyRequestOut(BaseModel):
    id: int
    shop: str
    platform: str
    kind: str = Field(description="data_request")
    customer_ref: str | None = Field(
        description="the shop's id for the customer, as the request named it; null once erased"
    )
    requested_at: datetime
    delivered_at: datetime | None
    export: dict[str, Any] | None = Field(
        description="the export produced when the request came in; null once erased"
    )


class PrivacyRequestPage(BaseModel):
    items: list[PrivacyRequestOut]
    next_cursor: int | None
