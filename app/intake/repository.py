"""The SQL of raw deliveries and intake failures. Functions flush; the caller owns the
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import IntakeFailure, WebhookDelivery


async def open_failure_of(
    session: AsyncSession, *, source: str, shop: str, delivery_id: str
) -> IntakeFailure | None:
    """The unresolved failure of this delivery, locked: a redelivery and a replay of the
    same delivery take turns, so only one of them can ingest it."""
    statement = (
        select(IntakeFailure)
        .join(WebhookDelivery, WebhookDelivery.id == IntakeFailure.webhook_delivery_id)
        .where(
            WebhookDelivery.source == source,
            WebhookDelivery.shop == shop,
            WebhookDelivery.delivery_id == delivery_id,
            IntakeFailure.replayed_at.is_(None),
        )
        .with_for_update(of=IntakeFailure)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def failure_with_delivery(
    session: AsyncSession, failure_id: int, *, lock: bool = True
) -> tuple[IntakeFailure, WebhookDelivery] | None:
    """The failure (locked, see `open_failure_of`, unless only read) and its stored delivery."""
    statement = (
        select(IntakeFailure, WebhookDelivery)
        .join(WebhookDelivery, WebhookDelivery.id == IntakeFailure.webhook_delivery_id)
        .where(IntakeFailure.id == failure_id)
    )
    if lock:
        statement = statement.with_for_update(of=IntakeFailure)
    row = (await session.execute(statement)).first()
    return None if row is None else (row[0], row[1])


async def replace_body(session: AsyncSession, *, delivery: int, body: str) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery)
        .values(body=body)
        .execution_options(synchronize_session=False)
    )


async def record_failure(
    session: AsyncSession,
    *,
    delivery: int,
    failure: IntakeFailure | None,
    error: str,
    now: datetime,
) -> IntakeFailure:
    """A new failure for the delivery, or the existing one with its error brought up to date."""
    if failure is None:
        failure = IntakeFailure(webhook_delivery_id=delivery, error=error, failed_at=now)
        session.add(failure)
    else:
        failure.error = error
        failure.attempts += 1
    await session.flush()
    return failure


async def resolve(
    session: AsyncSession, failure: IntakeFailure, *, result: str, now: datetime
) -> None:
    failure.replayed_at = now
    failure.replay_result = result[:255]
    await session.flush()


async def list_failures(
    session: AsyncSession,
    *,
    resolved: bool | None,
    source: str | None,
    before_id: int | None,
    limit: int,
) -> list[tuple[IntakeFailure, WebhookDelivery]]:
    """Newest first, keyset-paged by id."""
    statement = (
        select(IntakeFailure, WebhookDelivery)
        .join(WebhookDelivery, WebhookDelivery.id == IntakeFailure.webhook_delivery_id)
        .order_by(IntakeFailure.id.desc())
        .limit(limit)
    )
    if resolved is not None:
        statement = statement.where(
            IntakeFailure.replayed_at.is_not(None)
            if resolved
            else IntakeFailure.replayed_at.is_(None)
        )
    if source:
        statement = statement.where(WebhookDelivery.source == source)
    if before_id is not None:
        statement = statement.where(IntakeFailure.id < before_id)
    return [(row[0], row[1]) for row in (await session.execute(statement)).all()]


async def open_failure_ids(session: AsyncSession) -> Sequence[int]:
    """Every unresolved failure, oldest first (replayed in the order they came)."""
    statement = (
        select(IntakeFailure.id)
        .where(IntakeFailure.replayed_at.is_(None))
        .order_by(IntakeFailure.id)
    )
    return (await session.execute(statement)).scalars().all()


async def expired_body_ids(
    session: AsyncSession, *, received_before: datetime, limit: int
) -> Sequence[int]:
    """Deliveries received before the cutoff whose body is still stored, except those of an
    unresolved failure: that body is all there is to replay."""
    unresolved = select(IntakeFailure.webhook_delivery_id).where(
        IntakeFailure.replayed_at.is_(None)
    )
    statement = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.received_at < received_before,
            WebhookDelivery.body != "",
            WebhookDelivery.id.not_in(unresolved),
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    return (await session.execute(statement)).scalars().all()


async def empty_bodies(session: AsyncSession, ids: Sequence[int]) -> int:
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(body="")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_resolved_failures(session: AsyncSession, *, resolved_before: datetime) -> int:
    result = await session.execute(
        delete(IntakeFailure)
        .where(IntakeFailure.replayed_at < resolved_before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# Any fixed number: the key of the queue's PostgreSQL advisory lock.
_QUEUE_LOCK_KEY = 7_263_001


async def lock_queue(session: AsyncSession) -> bool:
    """Take the intake queue for this transaction; False when another worker holds it.

    One holder at a time is what applies the events of an order in the order they arrived.
    On SQLite a first statement that writes takes the database's write lock (waiting for it)
    before the queue is read.
    """
    if session.get_bind().dialect.name == "postgresql":
        taken = await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _QUEUE_LOCK_KEY}
        )
        return bool(taken.scalar_one())
    await session.execute(text("UPDATE webhook_deliveries SET queued = queued WHERE 0 = 1"))
    return True


async def queued_deliveries(session: AsyncSession, *, limit: int) -> Sequence[WebhookDelivery]:
    """The oldest queued deliveries, in the order they arrived."""
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.queued)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    return (await session.execute(statement)).scalars().all()


async def dequeue(session: AsyncSession, deliveries: Sequence[int]) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(deliveries))
        .values(queued=False)
        .execution_options(synchronize_session=False)
    )
