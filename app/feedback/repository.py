"""SQL of feedback intake: the events table, and finding the message a report is about."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import Customer, MailFeedbackEvent, Message, MessageStatus

# (message id, the address it was sent to)
Sent = tuple[int, str | None]


async def record_event(
    session: AsyncSession,
    *,
    provider: str,
    provider_event_id: str,
    kind: str,
    message_id: int | None,
    recipient: str | None,
    detail: str | None,
    received_at: datetime,
) -> int | None:
    """The new event's id, or None when this provider's event was recorded before."""
    insert = dialect_insert(session)
    result = await session.execute(
        insert(MailFeedbackEvent)
        .values(
            provider=provider,
            provider_event_id=provider_event_id,
            kind=kind,
            message_id=message_id,
            recipient=recipient,
            detail=detail,
            received_at=received_at,
        )
        .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
        .returning(MailFeedbackEvent.id)
    )
    return result.scalar_one_or_none()


async def sent_message(session: AsyncSession, message_id: int) -> Sent | None:
    row = (
        await session.execute(select(Message.id, Message.recipient).where(Message.id == message_id))
    ).first()
    return (row[0], row[1]) if row else None


async def message_by_smtp_id(session: AsyncSession, smtp_message_id: str) -> Sent | None:
    row = (
        await session.execute(
            select(Message.id, Message.recipient)
            .where(Message.smtp_message_id == smtp_message_id)
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def latest_sent_to(session: AsyncSession, recipient: str, *, before: datetime) -> Sent | None:
    """The last message sent to `recipient` (as given, or lower-cased) before `before`.

    Through the customers' indexed email, so a report that names only an address does not
    scan the outbox."""
    customers = select(Customer.id).where(Customer.email.in_({recipient, recipient.lower()}))
    row = (
        await session.execute(
            select(Message.id, Message.recipient)
            .where(
                Message.customer_id.in_(customers),
                Message.status == MessageStatus.SENT,
                Message.sent_at <= before,
            )
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else None
