"""One message's history as the console shows it: its facts and what happened, in time order.

Read-only, from `repository.message_history` (delivery attempts, opens and clicks with their
class, bounces and complaints reported later, the orders credited to it), made into one
timeline by `timeline_of` (pure).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer, Message, MessageStatus
from app.outbox import repository
from app.outbox.repository import MessageHistory

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
class MessageTimeline:
    message: Message
    email: str | None  # the customer's address now; None once erased
    order_id: str | None  # the shop's id of the order
    erased: bool
    timeline: list[Entry]


async def load_timeline(session: AsyncSession, message_id: int) -> MessageTimeline | None:
    """The message's facts and timeline (planned first, then oldest first); None when there
    is no such message. Its rows are `repository.message_history`'s (as the API's and
    `aftersale messages show`'s)."""
    history = await repository.message_history(session, message_id)
    if history is None:
        return None
    erased_at = await session.scalar(
        select(Customer.deleted_at).where(Customer.id == history.message.customer_id)
    )
    return MessageTimeline(
        message=history.message,
        email=history.email,
        order_id=history.order_id,
        erased=erased_at is not None,
        timeline=timeline_of(history),
    )


def timeline_of(history: MessageHistory) -> list[Entry]:
    """What happened to the message: planned first, whatever its clock said (created_at is
    the database host's time), then in time order; entries of one instant keep the order
    attempts, sent, status, opens and clicks, feedback, conversions."""
    message = history.message
    entries = [
        Entry(
            at=attempt.attempted_at,
            kind="attempt",
            title=f"Attempt {attempt.attempt}",
            detail=attempt.detail,
            reason=attempt.outcome,
            smtp_code=attempt.smtp_code,
        )
        for attempt in history.attempts
    ]
    if message.sent_at is not None:
        entries.append(
            Entry(at=message.sent_at, kind="sent", title="Sent", detail=message.smtp_message_id)
        )
    if message.status in _ENDED_WITHOUT_SENDING:
        paused = message.status == MessageStatus.PAUSED and message.paused_at is not None
        entries.append(
            Entry(
                at=message.paused_at if paused and message.paused_at else message.updated_at,
                kind="status",
                title=message.status.replace("_", " ").capitalize(),
                reason=message.status_reason,
            )
        )
    entries += [
        Entry(
            at=event.occurred_at,
            kind=event.kind,
            title=_TRACKED.get(event.kind, event.kind.capitalize()),
            detail=url,  # the link clicked (emptied by erasure); opens have none
            class_=event.class_,
            reason=event.reason,
        )
        for event, url in history.tracking
    ]
    entries += [
        Entry(
            at=report.received_at,
            kind="feedback",
            title=report.kind.replace("_", " ").capitalize(),
            detail=report.detail,
            reason=report.provider,
        )
        for report in history.feedback
    ]
    entries += [
        Entry(
            at=conversion.converted_at,
            kind="conversion",
            title="Converted (held out)" if conversion.via == "holdout" else "Converted",
            detail=" ".join(
                part
                for part in (
                    f"order {order or '—'}",
                    _money(conversion.revenue, conversion.currency),
                )
                if part
            ),
            reason=conversion.via,
        )
        for conversion, order in history.conversions
    ]
    entries.sort(key=lambda entry: entry.at)
    planned = Entry(
        at=message.created_at,
        kind="planned",
        title="Planned",
        detail=f"to be sent {message.send_at:%Y-%m-%d %H:%M} UTC",
    )
    return [planned, *entries]


_TRACKED = {"open": "Opened", "click": "Clicked", "answer": "Answered"}


def _money(amount: Decimal | None, currency: str | None) -> str:
    return "" if amount is None else f"{amount.quantize(Decimal('0.01'))} {currency or ''}".strip()
