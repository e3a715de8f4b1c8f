"""Answers of the mail feedback webhooks."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FeedbackResult(BaseModel):
    recorded: int = Field(description="bounces and complaints recorded by this request")
    duplicates: int = Field(description="reports recorded before (a redelivery): no effect")
    suppressed: int = Field(description="addresses suppressed (hard bounces and complaints)")
    unmatched: int = Field(description="recorded reports that named no message of ours")
    status: str = Field(
        default="ok",
        description="ok; for SNS subscription messages: subscription_logged or "
        "subscription_confirmed",
    )
