"""The outbox's writes on behalf of planning: planned messages stored, waiting ones stopped,
a customer's recipient data erased. Only `app/outbox/` writes the `messages` table.
Functions flush; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import Message, MessageAttempt, MessageKind, MessageStatus
from app.planner.planner import PlannedMessage


@cache
def _insert_planned_statement(insert: Any) -> Any:
    messages = Message.__table__
    return (
        insert(messages)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(messages.c.id)
    )


async def insert_planned(
    session: AsyncSession,
    planned: Sequence[PlannedMessage],
    *,
    customer_id: int,
    order_id: int | None,
) -> int:
    """Insert planned messages; ones planned before (same dedupe key) are left alone."""
    if not planned:
        return 0
    rows = [
        {
            "customer_id": customer_id,
            "order_id": order_id,
            "rule_id": plan.rule_id,
            "rule_version": plan.rule_version,
            "template": plan.template,
            "kind": plan.kind,
            "variant": plan.variant,
            "dedupe_key": plan.dedupe_key,
            "status": plan.status,
            "status_reason": plan.reason,
            "send_at": plan.send_at,
            "expires_at": plan.expires_at,
            "next_attempt_at": plan.send_at,
            "attempts": 0,
            "step": plan.step,
            "event_at": plan.event_at,
        }
        for plan in planned
    ]
    # One statement either way, but an executemany compiles once per process, where a
    # multi-row VALUES is compiled again on every call.
    statement = _insert_planned_statement(dialect_insert(session))
    return len((await session.execute(statement, rows)).scalars().all())


async def cancel_pending(
    session: AsyncSession,
    *,
    reason: str,
    order_id: int | None = None,
    customer_id: int | None = None,
    ids: Sequence[int] | None = None,
    dedupe_keys: Sequence[str] | None = None,
) -> int:
    """Cancel what has not been handed to a worker yet, keeping the reason. Every filter
    given must hold; an empty list of ids or keys cancels nothing."""
    if (ids is not None and not ids) or (dedupe_keys is not None and not dedupe_keys):
        return 0
    statement = (
        update(Message)
        .where(Message.status == MessageStatus.SCHEDULED)
        .values(status=MessageStatus.CANCELLED, status_reason=reason, updated_at=func.now())
    )
    if order_id is not None:
        statement = statement.where(Message.order_id == order_id)
    if customer_id is not None:
        statement = statement.where(Message.customer_id == customer_id)
    if ids is not None:
        statement = statement.where(Message.id.in_(ids))
    if dedupe_keys is not None:
        statement = statement.where(Message.dedupe_key.in_(dedupe_keys))
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def restore_cancelled(
    session: AsyncSession, *, dedupe_key: str, reason: str, send_at: datetime
) -> int:
    """Schedule again, at `send_at`, the message of `dedupe_key` if it was cancelled for
    `reason` and nothing else (a survey reward cancelled for a scanner's burst, earned
    later by the person)."""
    result = await session.execute(
        update(Message)
        .where(
            Message.dedupe_key == dedupe_key,
            Message.status == MessageStatus.CANCELLED,
            Message.status_reason == reason,
        )
        .values(
            status=MessageStatus.SCHEDULED,
            status_reason=None,
            send_at=send_at,
            next_attempt_at=send_at,
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def skip_pending_marketing(session: AsyncSession, *, customer_id: int) -> int:
    result = await session.execute(
        update(Message)
        .where(
            Message.customer_id == customer_id,
            Message.kind == MessageKind.MARKETING,
            Message.status == MessageStatus.SCHEDULED,
        )
        .values(status=MessageStatus.SKIPPED, status_reason="no_consent", updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def pending_messages(session: AsyncSession, *, order_id: int) -> list[tuple[int, str]]:
    """(id, rule id) of the order's messages still waiting to be sent."""
    rows = await session.execute(
        select(Message.id, Message.rule_id).where(
            Message.order_id == order_id, Message.status == MessageStatus.SCHEDULED
        )
    )
    return [(message_id, rule_id) for message_id, rule_id in rows]


async def decided_keys(session: AsyncSession, dedupe_keys: Sequence[str]) -> set[str]:
    """Which of these messages exist and no longer wait (sent, sending, skipped, ...)."""
    rows = await session.execute(
        select(Message.dedupe_key).where(
            Message.dedupe_key.in_(dedupe_keys), Message.status != MessageStatus.SCHEDULED
        )
    )
    return set(rows.scalars())


async def erase_recipient(session: AsyncSession, *, customer_id: int) -> None:
    """The customer's address and SMTP replies leave their messages; statuses stay."""
    await session.execute(
        update(Message)
        .where(Message.customer_id == customer_id)
        .values(recipient=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    messages = select(Message.id).where(Message.customer_id == customer_id).scalar_subquery()
    # SMTP replies often quote the address ("550 <anna@…>: no such user").
    await session.execute(
        update(MessageAttempt)
        .where(MessageAttempt.message_id.in_(messages))
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )
