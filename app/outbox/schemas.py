"""Operator API shapes for the outbox, and the one mapping from rows to them (the API and
`aftersale messages` both print these)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from app.models import Message, MessageStatus
from app.outbox.repository import MessageHistory


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


def message_out(message: Message, email: str | None, order_id: str | None) -> MessageOut:
    """A message as the operator API shows it: (message, customer email, shop's order id)."""
    return MessageOut(
        id=message.id,
        rule=message.rule_id,
        rule_version=message.rule_version,
        template=message.template,
        step=message.step,
        variant=message.variant,
        kind=message.kind,
        status=message.status,
        reason=message.status_reason,
        email=email,
        order_id=order_id,
        send_at=message.send_at,
        expires_at=message.expires_at,
        next_attempt_at=message.next_attempt_at
        if message.status in (MessageStatus.SCHEDULED, MessageStatus.SENDING, MessageStatus.PAUSED)
        else None,
        attempts=message.attempts,
        last_error=message.last_error,
        sent_at=message.sent_at,
        smtp_message_id=message.smtp_message_id,
    )


def message_page(
    rows: Sequence[tuple[Message, str | None, str | None]], *, limit: int
) -> MessagePage:
    """One page of `repository.list_messages`; a full page has a cursor to the next."""
    items = [message_out(*row) for row in rows]
    return MessagePage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    outcome: str
    smtp_code: int | None = Field(description="the SMTP server's reply code, when it gave one")
    detail: str | None = Field(description="the server's reply, or why it was not sent")


class EngagementOut(BaseModel):
    kind: str = Field(description="open, click, or answer (a one-click survey answer)")
    at: datetime
    class_: str = Field(serialization_alias="class", description="human, machine or unknown")
    reason: str = Field(description="why it was classed so")
    url: str | None = Field(description="the link clicked (null for opens)")
    user_agent: str | None


class FeedbackOut(BaseModel):
    kind: str = Field(description="hard_bounce, soft_bounce or complaint")
    provider: str
    received_at: datetime
    detail: str | None


class ConversionOut(BaseModel):
    order_id: str | None = Field(description="the shop's id of the order credited")
    via: str = Field(description="click, open or holdout")
    revenue: str | None
    currency: str | None
    converted_at: datetime


class MessageDetailOut(MessageOut):
    """A message with what happened to it: attempts, opens and clicks, bounce and complaint
    reports, and the orders credited to it."""

    planned_at: datetime
    updated_at: datetime
    event_at: datetime | None = Field(description="when the event its timing counts from was")
    recipient: str | None = Field(description="the address it was sent to")
    attempt_log: list[AttemptOut]
    engagement: list[EngagementOut]
    feedback: list[FeedbackOut]
    conversions: list[ConversionOut]


def message_detail_out(history: MessageHistory) -> MessageDetailOut:
    message = history.message
    return MessageDetailOut(
        **message_out(message, history.email, history.order_id).model_dump(),
        planned_at=message.created_at,
        updated_at=message.updated_at,
        event_at=message.event_at,
        recipient=message.recipient,
        attempt_log=[
            AttemptOut(
                attempt=attempt.attempt,
                attempted_at=attempt.attempted_at,
                outcome=attempt.outcome,
                smtp_code=attempt.smtp_code,
                detail=attempt.detail,
            )
            for attempt in history.attempts
        ],
        engagement=[
            EngagementOut(
                kind=event.kind,
                at=event.occurred_at,
                class_=event.class_,
                reason=event.reason,
                url=url,
                user_agent=event.user_agent,
            )
            for event, url in history.tracking
        ],
        feedback=[
            FeedbackOut(
                kind=event.kind,
                provider=event.provider,
                received_at=event.received_at,
                detail=event.detail,
            )
            for event in history.feedback
        ],
        conversions=[
            ConversionOut(
                order_id=order_id,
                via=conversion.via,
                revenue=None if conversion.revenue is None else _money(conversion.revenue),
                currency=conversion.currency,
                converted_at=conversion.converted_at,
            )
            for conversion, order_id in history.conversions
        ],
    )


def _money(amount: Decimal) -> str:
    """As the stats API writes revenue: cents, and more digits only when the amount has them."""
    cents = amount.quantize(Decimal("0.01"))
    return str(cents if cents == amount else amount.normalize())
