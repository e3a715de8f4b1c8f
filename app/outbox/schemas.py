"""Operator API shapes for the outbox."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class MessageOut(BaseModel):
    id: int
    rule: str
    rule_version: str
    template: str
    variant: str | None
    # Its place in the rule's sequence: 1 is the rule's own message, 2... its `steps`.
    step: int = 1
    kind: str
    status: str
    reason: str | None
    email: str | None
    order_id: str | None
    send_at: datetime
    expires_at: datetime | None
    next_attempt_at: datetime | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    smtp_message_id: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: int | None
