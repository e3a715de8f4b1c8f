"""Outcomes recorded in batches: one UPDATE for the messages that went, owned rows only."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from _pytest.logging import LogCaptureFixture
from sqlalchemy import event, func, select, update

from app.models import Message, MessageAttempt, MessageStatus, TrackedLink
from app.outbox import repository
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.factories import seed_due_messages
from tests.smtp_sink import SmtpSink


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


async def test_a_batch_records_its_links_and_outcomes_in_shared_statements(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, caplog: LogCaptureFixture
) -> None:
    await seed_due_messages(runtime, *(f"n{number}@example.org" for number in range(12)))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if re.match(r"\s*(WITH finished|INSERT INTO (tracked_links|message_attempts))", statement):
            statements.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with caplog.at_level(logging.DEBUG, logger="app.outbox.group_commit"):
            assert (await dispatcher.run_once()).outcomes == {"sent": 12}
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert len(smtp_sink.received) == 12
    # No group fell back to one transaction per write (which would hide a broken batch).
    assert "one by one" not in caplog.text
    # Each kind of write is one statement per group at most, never one per link or row
    # (how many messages share a group depends on timing: on PostgreSQL here about 12
    # statements in all, on SQLite, whose writes return faster, nearer 36).
    assert len(statements) <= 3 * 12, statements
    async with runtime.session_factory() as session:
        links = await session.scalar(select(func.count()).select_from(TrackedLink))
        attempts = await session.scalar(select(func.count()).select_from(MessageAttempt))
    assert attempts == 12 and links is not None and links >= 2 * 12  # honeypot and pixel
