"""The queries behind the outbox gauges of `GET /metrics` and the sending check of `/readyz`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message, MessageStatus, SenderPause


@dataclass(frozen=True)
class OutboxSnapshot:
    by_status: Mapping[str, int]
    # Claimable now: what `claim_due_messages` would take, batch size aside.
    due: int
    oldest_due_at: datetime | None
    sender_pauses: Sequence[SenderPause] = ()


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
    return OutboxSnapshot(
        by_status={status: count for status, count, _, _ in rows},
        due=sum(int(due or 0) for _, _, due, _ in rows),
        oldest_due_at=min(due_times, default=None),
        sender_pauses=await sender_pauses(session, now=now),
    )


async def sender_pauses(session: AsyncSession, *, now: datetime) -> list[SenderPause]:
    """Workers paused now; a pause whose time is over waits only for its probe."""
    rows = await session.execute(
        select(SenderPause)
        .where(SenderPause.paused_until > now)
        .order_by(SenderPause.paused_until.desc())
    )
    return list(rows.scalars().all())
