"""Queued intake (AFTERSALE_INTAKE_MODE=queued): a worker applies what the requests stored.

The request verified, mapped and stored the delivery with `queued` set, and answered. Here
the same `map_and_ingest` as the inline path runs on it, so a queued order ends exactly as
an inline one would, a few seconds later. One worker at a time holds the queue (a lock for
the transaction), and takes it oldest first: the events of an order apply in the order they
arrived. A batch is one transaction, which is most of the gain over the inline path.

A delivery that raises (a bug, not a bad payload: those are kept as intake failures by
`map_and_ingest`) is kept as an intake failure too, so one cannot hold up the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.intake import repository
from app.intake.registry import platform_of
from app.intake.service import map_and_ingest, stored_delivery
from app.models import WebhookDelivery
from app.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class QueueReport:
    applied: int = 0
    failed: int = 0
    # Another worker held the queue: it applies what this run would have.
    skipped: bool = False


async def apply_queued(runtime: Runtime, *, batch: int = BATCH) -> QueueReport:
    """Apply queued deliveries until none is left. Safe to run any number of times, anywhere."""
    report = QueueReport()
    async with runtime.session_factory() as session:
        # A read of the partial index first: most runs find nothing (inline mode, the
        # default, queues nothing), and then take no lock (SQLite's is the write lock).
        if not await repository.queued_deliveries(session, limit=1):
            return report
    while True:
        try:
            async with transaction(runtime.session_factory) as session:
                if not await repository.lock_queue(session):
                    report.skipped = True
                    return report
                stored = await repository.queued_deliveries(session, limit=batch)
                for delivery in stored:
                    await _apply(session, delivery, runtime)
                await repository.dequeue(session, [delivery.id for delivery in stored])
        except Exception:
            # Rolled back: apply the batch one by one, so only what raises is set aside.
            log.warning("an intake batch failed; applying it one delivery at a time")
            if not await _apply_one_by_one(runtime, batch, report):
                return report
            continue
        report.applied += len(stored)
        if len(stored) < batch:
            return report


async def _apply_one_by_one(runtime: Runtime, batch: int, report: QueueReport) -> bool:
    """Each delivery in a transaction of its own; one that raises is kept as an intake
    failure. False when another worker took the queue meanwhile."""
    for _ in range(batch):
        taken: tuple[int, str, str] | None = None  # plain values: a rollback expires rows
        try:
            async with transaction(runtime.session_factory) as session:
                if not await repository.lock_queue(session):
                    report.skipped = True
                    return False
                oldest = await repository.queued_deliveries(session, limit=1)
                if not oldest:
                    return True
                taken = (oldest[0].id, oldest[0].source, oldest[0].delivery_id)
                await _apply(session, oldest[0], runtime)
                await repository.dequeue(session, [oldest[0].id])
        except Exception as exc:
            if taken is None:
                raise  # not the delivery: the database itself (the next run tries again)
            await _set_aside(runtime, taken, exc)
            report.failed += 1
            continue
        report.applied += 1
    return True


async def _set_aside(runtime: Runtime, taken: tuple[int, str, str], exc: Exception) -> None:
    # The exception's type only: its text may quote the payload, and logs hold no personal
    # data. The traceback is logged for whoever fixes the code.
    error = f"could not be applied: {type(exc).__name__} (see the worker's log)"
    row, source, delivery_id = taken
    log.exception("%s delivery %s %s", source, delivery_id, error)
    async with transaction(runtime.session_factory) as session:
        await repository.record_failure(
            session, delivery=row, failure=None, error=error, now=runtime.clock.now()
        )
        await repository.dequeue(session, [row])


async def _apply(session: AsyncSession, stored: WebhookDelivery, runtime: Runtime) -> None:
    if not stored.body:
        return  # erased (with its shop or customer) while it waited: nothing left to apply
    platform = platform_of(stored.source)
    if platform is None:
        await repository.record_failure(
            session,
            delivery=stored.id,
            failure=None,
            error=f"no platform {stored.source!r} maps this delivery",
            now=runtime.clock.now(),
        )
        return
    await map_and_ingest(
        session,
        platform=platform,
        delivery=stored_delivery(stored),
        row=stored.id,
        failure=None,
        received_at=stored.received_at,
        rules=runtime.rules.current,
        settings=runtime.settings,
        now=runtime.clock.now(),
        resolved_by="applied",
    )
