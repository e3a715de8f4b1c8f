"""Operator API shapes for the suppression list."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.models import SuppressionReason


class SuppressionIn(BaseModel):
    # A misspelt field (e.g. "reasons") is an error rather than silently the default.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr = Field(max_length=320)
    reason: SuppressionReason = SuppressionReason.MANUAL
    detail: str | None = Field(default=None, max_length=2000)


class SuppressionOut(BaseModel):
    id: int
    email: str
    reason: str
    detail: str | None
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_cursor: int | None
