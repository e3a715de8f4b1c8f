"""Operator API shapes for the suppression list, and the mapping from rows to them (the API
and `aftersale suppressions` both print these)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, model_validator

from app.models import Suppression, SuppressionReason


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


def suppression_out(suppression: Suppression) -> SuppressionOut:
    return SuppressionOut(
        id=suppression.id,
        email=suppression.email,
        reason=suppression.reason,
        detail=suppression.detail,
        created_at=suppression.created_at,
    )


def suppression_page(rows: Sequence[Suppression], *, limit: int) -> SuppressionPage:
    """One page of `repository.list_suppressions`; a full page has a cursor to the next."""
    items = [suppression_out(row) for row in rows]
    return SuppressionPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


class BulkRemovalIn(BaseModel):
    """Which entries to take off the list: a reason, a creation time window, or both."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "reason": "hard_bounce",
                    "since": "2026-12-01T00:00:00Z",
                    "dry_run": True,
                    "note": "SMTP password was wrong on Dec 1",
                }
            ]
        },
    )

    reason: SuppressionReason | None = None
    since: AwareDatetime | None = Field(default=None, description="entries made at or after")
    until: AwareDatetime | None = Field(default=None, description="entries made before")
    dry_run: bool = Field(default=False, description="count only; remove nothing")
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _narrowed(self) -> BulkRemovalIn:
        if self.reason is None and self.since is None:
            raise ValueError("give reason, since, or both: the whole list is never removed")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since")
        return self


class RemovalReportOut(BaseModel):
    dry_run: bool
    removed: int = Field(description="entries removed (in a dry run: that would be)")
    by_reason: dict[str, int]


class RemovalOut(BaseModel):
    id: int
    email: str
    reason: str
    detail: str | None
    suppressed_at: datetime
    removed_at: datetime
    source: str
    note: str | None


class RemovalPage(BaseModel):
    items: list[RemovalOut]
    next_cursor: int | None
