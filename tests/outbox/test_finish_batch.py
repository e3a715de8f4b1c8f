"""Outcomes recorded in batches: one UPDATE for the messages that went, owned rows only."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update

from app.models import Message, MessageAttempt, MessageStatus
from app.outbox import repository
from app.runtime import Runtime
from tests.factories import seed_due_messages


async def test_one_statement_records_a_batch_and_skips_rows_another_worker_took(
    runtime: Runtime,
) -> None:
    emails = [f"k{number}@example.org" for number in range(6)]
    await seed_due_messages(runtime, *emails)
    now = runtime.clock.now()
    async with runtime.session_factory.begin() as session:
        ids = sorted(
            await repository.claim_due_messages(
                session, worker_id="a", now=now, lease=timedelta(minutes=2), limit=10
            )
        )
    taken = ids[2]
    async with runtime.session_factory.begin() as session:
        await session.execute(update(Message).where(Message.id == taken).values(claimed_by="b"))
    finishes = [
        repository.Finish(
            message_id=message_id,
            status=MessageStatus.SENT,
            now=now,
            recipient=f"r{message_id}@example.org",
            smtp_message_id=f"<{message_id}@example.com>",
            smtp_code=250,
            attempt=1,
        )
        for message_id in ids[:5]
    ] + [repository.Finish(message_id=ids[5], status=MessageStatus.SKIPPED, now=now, reason="x")]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        async with runtime.session_factory.begin() as session:
            owned = await repository.finish_messages(session, worker_id="a", finishes=finishes)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert owned == [True, True, False, True, True, True]
    # The five sent share one UPDATE, the skipped one has its own; one INSERT of attempts.
    updates = [s for s in statements if re.match(r"\s*(WITH|UPDATE)\b", s)]
    inserts = [s for s in statements if s.lstrip().startswith("INSERT INTO message_attempts")]
    assert len(updates) == 2 and len(inserts) == 1, statements
    async with runtime.session_factory() as session:
        rows = {m.id: m for m in (await session.execute(select(Message))).scalars()}
        attempts = (await session.execute(select(MessageAttempt.message_id))).scalars().all()
    for message_id in ids[:5]:
        message = rows[message_id]
        if message_id == taken:
            assert (message.status, message.claimed_by, message.recipient) == ("sending", "b", None)
            continue
        assert message.status == "sent" and message.claimed_by is None
        assert message.recipient == f"r{message_id}@example.org"
        assert message.smtp_message_id == f"<{message_id}@example.com>"
        assert message.sent_at == now
    assert (rows[ids[5]].status, rows[ids[5]].status_reason) == ("skipped", "x")
    assert sorted(attempts) == sorted(set(ids[:5]) - {taken})
