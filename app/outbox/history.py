"""One message's history as an operator reads it: its facts and what happened, in time order.

Read-only. The message and its address come from the outbox; the rest from the tables that
record what followed: delivery attempts, opens and clicks (with their class), bounces and
complaints reported later, and the order credited to it. A few small queries, each by the
message's id (every one of these tables is indexed on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Conversion,
    Customer,
    MailFeedbackEvent,
    Message,
    MessageAttempt,
    MessageStatus,
    Order,
    TrackedLink,
    TrackingEvent,
)

# Statuses that end a message without an attempt saying so (an attempt records a send's end).
_ENDED_WITHOUT_SENDING = frozenset(
    {
        MessageStatus.CANCELLED,
        MessageStatus.SKIPPED,
        MessageStatus.EXPIRED,
        MessageStatus.HELD_OUT,
        MessageStatus.PAUSED,
    }
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline. `kind`: planned, attempt, sent, open, click, feedback,
    conversion or status; `class_` the open's or click's class (human, machine, unknown)."""

    at: datetime
    kind: str
    title: str
    detail: str | None = None
    class_: str | None = None
    reason: str | None = None
    smtp_code: int | None = None


@dataclass(frozen=True, slots=True)
class MessageHistory:
    message: Message
    email: str | None  # the customer's address now; None once erased
    order_id: str | None  # the shop's id of the order
    erased: bool
    timeline: list[Entry]


async def load_history(session: AsyncSession, message_id: int) -> MessageHistory | None:
    """The message's facts and timeline (oldest first); None when there is no such message."""
    row = (
        await session.execute(
            select(Message, Customer.email, Customer.deleted_at, Order.external_id)
            .join(Customer, Customer.id == Message.customer_id)
            .outerjoin(Order, Order.id == Message.order_id)
            .where(Message.id == message_id)
        )
    ).first()
    if row is None:
        return None
    message, email, deleted_at, order_id = row
    planned = Entry(at=message.created_at, kind="planned", title="Planned", detail=_plan(message))
    timeline = await _attempts(session, message_id)
    if message.sent_at is not None:
        timeline.append(
            Entry(at=message.sent_at, kind="sent", title="Sent", detail=message.smtp_message_id)
        )
    if message.status in _ENDED_WITHOUT_SENDING:
        timeline.append(
            Entry(
                at=message.paused_at
                if message.status == MessageStatus.PAUSED and message.paused_at
                else message.updated_at,
                kind="status",
                title=message.status.replace("_", " ").capitalize(),
                reason=message.status_reason,
            )
        )
    timeline += await _tracking(session, message_id)
    timeline += await _feedback(session, message_id)
    timeline += await _conversions(session, message_id)
    # Stable: entries of one instant keep the order above (attempt, sent, ...). Planning
    # comes first whatever its clock said (created_at is the database host's time).
    timeline.sort(key=lambda entry: entry.at)
    timeline.insert(0, planned)
    return MessageHistory(
        message=message,
        email=email,
        order_id=order_id,
        erased=deleted_at is not None,
        timeline=timeline,
    )


def _plan(message: Message) -> str:
    return f"to be sent {message.send_at:%Y-%m-%d %H:%M} UTC"


async def _attempts(session: AsyncSession, message_id: int) -> list[Entry]:
    rows = (
        await session.execute(
            select(MessageAttempt)
            .where(MessageAttempt.message_id == message_id)
            .order_by(MessageAttempt.attempted_at, MessageAttempt.id)
        )
    ).scalars()
    return [
        Entry(
            at=attempt.attempted_at,
            kind="attempt",
            title=f"Attempt {attempt.attempt}",
            detail=attempt.detail,
            reason=attempt.outcome,
            smtp_code=attempt.smtp_code,
        )
        for attempt in rows
    ]


async def _tracking(session: AsyncSession, message_id: int) -> list[Entry]:
    rows = await session.execute(
        select(TrackingEvent, TrackedLink.url)
        .outerjoin(TrackedLink, TrackedLink.id == TrackingEvent.link_id)
        .where(TrackingEvent.message_id == message_id)
        .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
    )
    return [
        Entry(
            at=event.occurred_at,
            kind=event.kind,
            title={"open": "Opened", "click": "Clicked"}.get(event.kind, event.kind.capitalize()),
            # The link's address (emptied by erasure); opens have none.
            detail=url,
            class_=event.class_,
            reason=event.reason,
        )
        for event, url in rows
    ]


async def _feedback(session: AsyncSession, message_id: int) -> list[Entry]:
    rows = (
        await session.execute(
            select(MailFeedbackEvent)
            .where(MailFeedbackEvent.message_id == message_id)
            .order_by(MailFeedbackEvent.received_at, MailFeedbackEvent.id)
        )
    ).scalars()
    return [
        Entry(
            at=event.received_at,
            kind="feedback",
            title=event.kind.replace("_", " ").capitalize(),
            detail=event.detail,
            reason=event.provider,
        )
        for event in rows
    ]


async def _conversions(session: AsyncSession, message_id: int) -> list[Entry]:
    rows = await session.execute(
        select(Conversion, Order.external_id)
        .join(Order, Order.id == Conversion.order_id)
        .where(Conversion.message_id == message_id)
        .order_by(Conversion.converted_at, Conversion.id)
    )
    return [
        Entry(
            at=conversion.converted_at,
            kind="conversion",
            title="Converted" if conversion.via != "holdout" else "Converted (held out)",
            detail=f"order {order} {_money(conversion.revenue, conversion.currency)}".rstrip(),
            reason=conversion.via,
        )
        for conversion, order in rows
    ]


def _money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return ""
    return f"{amount.quantize(Decimal('0.01'))} {currency or ''}".rstrip()
