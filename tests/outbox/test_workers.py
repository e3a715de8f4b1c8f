"""Several dispatchers on one database, and a worker that dies holding a batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from app.db import transaction
from app.models import Customer, Message, MessageStatus
from app.outbox import repository
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink


async def seed_messages(
    runtime: Runtime, count: int, *, now_offset: timedelta = timedelta(0), first: int = 0
) -> None:
    """`count` due thank-you messages, to user{first}@example.org and on, one per customer."""
    now = runtime.clock.now()
    async with transaction(runtime.session_factory) as session:
        customers = [
            Customer(
                shop="default",
                external_id=f"c{i}",
                email=f"user{i}@example.org",
                first_name=f"User{i}",
                source_updated_at=now,
                attributes={},
            )
            for i in range(first, first + count)
        ]
        session.add_all(customers)
        await session.flush()
        session.add_all(
            Message(
                customer_id=customer.id,
                rule_id="thank-you",
                rule_version="v",
                template="thank-you",
                kind="transactional",
                dedupe_key=f"seed:{customer.id}",
                status="scheduled",
                send_at=now + now_offset,
                next_attempt_at=now + now_offset,
                attempts=0,
            )
            for customer in customers
        )


async def status_counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(select(Message.status, func.count()).group_by(Message.status))
        ).all()
    return {status: number for status, number in rows}


async def test_two_dispatchers_send_each_message_exactly_once(
    runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    runtime.settings.dispatch_batch_size = 50
    await seed_messages(runtime, 500)
    first, second = make_dispatcher(runtime, "worker-1"), make_dispatcher(runtime, "worker-2")
    try:
        reports = await asyncio.gather(first.drain(), second.drain())
    finally:
        await first.sender.close()
        await second.sender.close()
    recipients = Counter(mail.recipients[0] for mail in smtp_sink.received)
    assert len(recipients) == 500
    assert max(recipients.values()) == 1, [r for r, n in recipients.items() if n > 1]
    assert len(set(smtp_sink.message_ids())) == 500
    assert await status_counts(runtime) == {"sent": 500}
    sent_by = [report.outcomes.get("sent", 0) for report in reports]
    assert sum(sent_by) == 500
    print(f"work shared between two dispatchers: {sent_by}")


async def test_claims_do_not_overlap(runtime: Runtime) -> None:
    await seed_messages(runtime, 40)
    now = runtime.clock.now()

    async def claim(worker: str) -> list[int]:
        async with transaction(runtime.session_factory) as session:
            return await repository.claim_due_messages(
                session, worker_id=worker, now=now, lease=timedelta(minutes=1), limit=15
            )

    batches = await asyncio.gather(*(claim(f"w{i}") for i in range(4)))
    claimed = [message_id for batch in batches for message_id in batch]
    assert len(claimed) == len(set(claimed)) == 40


async def test_dead_workers_batch_is_reclaimed_after_its_lease(
    runtime: Runtime, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, 20)
    # A worker claims a batch and dies before sending or recording anything.
    async with transaction(runtime.session_factory) as session:
        held = await repository.claim_due_messages(
            session,
            worker_id="dead-worker",
            now=clock.now(),
            lease=timedelta(seconds=runtime.settings.lease_seconds),
            limit=10,
        )
    assert len(held) == 10
    survivor = make_dispatcher(runtime, "survivor")
    try:
        report = await survivor.drain()
        assert report.outcomes == {"sent": 10}  # the held ten wait for their lease
        assert (await status_counts(runtime)) == {"sent": 10, "sending": 10}
        clock.advance(seconds=runtime.settings.lease_seconds + 1)
        report = await survivor.drain()
        assert report.outcomes == {"sent": 10}
    finally:
        await survivor.sender.close()
    assert await status_counts(runtime) == {"sent": 20}
    assert len(smtp_sink.received) == 20
    async with runtime.session_factory() as session:
        attempts = (
            (await session.execute(select(Message.attempts).where(Message.id.in_(held))))
            .scalars()
            .all()
        )
    assert set(attempts) == {2}  # the dead worker's claim counted as an attempt


async def test_late_worker_cannot_overwrite_newer_outcome(
    runtime: Runtime, clock: FrozenClock
) -> None:
    await seed_messages(runtime, 1)
    lease = timedelta(seconds=10)
    async with transaction(runtime.session_factory) as session:
        [message_id] = await repository.claim_due_messages(
            session, worker_id="slow", now=clock.now(), lease=lease, limit=1
        )
    clock.advance(seconds=11)
    async with transaction(runtime.session_factory) as session:
        assert await repository.claim_due_messages(
            session, worker_id="fast", now=clock.now(), lease=lease, limit=1
        ) == [message_id]
        assert await repository.finish_message(
            session,
            message_id=message_id,
            worker_id="fast",
            status=MessageStatus.SENT,
            now=clock.now(),
        )
    async with transaction(runtime.session_factory) as session:
        assert not await repository.finish_message(
            session,
            message_id=message_id,
            worker_id="slow",
            status=MessageStatus.FAILED,
            now=clock.now(),
            reason="late",
        )
    assert await status_counts(runtime) == {"sent": 1}


async def test_a_batch_that_outlasts_its_lease_keeps_it(
    runtime: Runtime, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    """A slow server (or rate limits) must not let a second worker send the same message."""
    runtime.settings = runtime.settings.model_copy(update={"lease_seconds": 0.6})
    await seed_messages(runtime, 1)
    smtp_sink.data_delay = 1.5
    slow, other = make_dispatcher(runtime, "slow"), make_dispatcher(runtime, "other")
    try:
        sending = asyncio.create_task(slow.run_once())
        await asyncio.sleep(0.1)
        clock.advance(seconds=1)  # past the lease it claimed with
        await asyncio.sleep(0.5)  # the heartbeat (every 0.2 s) has renewed it since
        assert (await other.run_once()).claimed == 0
        assert (await sending).outcomes == {"sent": 1}
    finally:
        await slow.sender.close()
        await other.sender.close()
    assert len(smtp_sink.received) == 1
