"""The queries behind the outbox gauges of `GET /metrics` and the sending check of `/readyz`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message, MessageStatus, SenderPause, WebhookDelivery


@dataclass(frozen=True)
class OutboxSnapshot:
    by_status: Mapping[str, int]
    # Claimable now: what `claim_due_messages` would take, batch size aside.
    due: int
    oldest_due_at: datetime | None
    sender_pauses: Sequence[SenderPause] = ()
    # Webhook deliveries waiting for a worker (queued intake), and the oldest one's arrival.
    intake_queued: int = 0
    oldest_queued_at: datetime | None = None


async def outbox_snapshot(session: AsyncSession, *, now: datetime) -> OutboxSnapshot:
    """Messages by status, and the due ones, in one grouped pass over the status index."""
    # The same condition as `claim_due_messages`: scheduled and due, or a lapsed lease.
    is_due = and_(
        Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.SENDING]),
        Message.next_attempt_at <= now,
    )
    rows = (
        await session.execute(
            select(
                Message.status,
                func.count(),
                func.sum(case((is_due, 1), else_=0)),
                func.min(case((is_due, Message.next_attempt_at))),
            ).group_by(Message.status)
        )
    ).all()
    due_times = [oldest for *_, oldest in rows if oldest is not None]
    intake_queued, oldest_queued_at = await queue_depth(session)
    return OutboxSnapshot(
        by_status={status: count for status, count, _, _ in rows},
        due=sum(int(due or 0) for _, _, due, _ in rows),
        oldest_due_at=min(due_times, default=None),
        sender_pauses=await sender_pauses(session, now=now),
        intake_queued=intake_queued,
        oldest_queued_at=oldest_queued_at,
    )


async def sender_pauses(session: AsyncSession, *, now: datetime) -> list[SenderPause]:
    """Workers paused now; a pause whose time is over waits only for its probe."""
    rows = await session.execute(
        select(SenderPause)
        .where(SenderPause.paused_until > now)
        .order_by(SenderPause.paused_until.desc())
    )
    return list(rows.scalars().all())


async def queue_depth(session: AsyncSession) -> tuple[int, datetime | None]:
    """Webhook deliveries waiting for a worker (queued intake), and when the oldest arrived:
    a read of the queue's partial index."""
    found = await session.execute(
        select(func.count(), func.min(WebhookDelivery.received_at)).where(WebhookDelivery.queued)
    )
    count, oldest = found.one()
    return int(count), oldest
