"""Sender-side SMTP failures never touch recipients (issue 15, item 1).

A real aiosmtpd server answers 535 to AUTH, 550 5.7.1 to MAIL FROM, 550 5.1.1 to RCPT TO or
554 5.7.1 after DATA. Only the third suppresses anybody. The first two pause the worker
(said in /readyz, /metrics and the log); once the server is fixed, every message goes once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.config import Settings
from app.mail.sender import SmtpPool
from app.mail.templates import TemplateRenderer
from app.models import Message, MessageAttempt, SenderPause, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.faults.ledger import take_ledger
from tests.faults.test_smtp_faults import drain_until_settled
from tests.outbox.test_workers import seed_messages
from tests.smtp_sink import SmtpSink

MESSAGES = 12


@pytest.fixture
def settings(settings: Settings, smtp_sink: SmtpSink) -> Settings:
    # We log in as shop/secret; the sink decides whether that password is right.
    return settings.model_copy(
        update={
            "smtp_url": (
                f"smtp://shop:secret@127.0.0.1:{smtp_sink.port}?starttls=off&pool_size=2&timeout=2"
            ),
            "sender_pause_after": 3,
            "sender_pause_seconds": 30,
            "sender_pause_max_seconds": 300,
        }
    )


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    settings = runtime.settings
    worker = Dispatcher(
        runtime=runtime,
        sender=SmtpPool(settings.smtp),
        renderer=TemplateRenderer(settings.templates_dir, default_locale=settings.default_locale),
        worker_id="worker-sender-side",
    )
    yield worker
    await worker.sender.close()


def wrong_password(sink: SmtpSink) -> Callable[[], None]:
    sink.password = "the-new-password"

    def fix() -> None:
        sink.password = "secret"

    return fix


def sender_refused(sink: SmtpSink) -> Callable[[], None]:
    sink.mail_reply = lambda _address: "550 5.7.1 Sender address rejected: not owned by user"

    def fix() -> None:
        sink.mail_reply = lambda _address: None

    return fix


async def suppressed(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(Suppression.email, Suppression.reason))
        return sorted((email, reason) for email, reason in rows.all())


async def attempts_used(runtime: Runtime) -> list[int]:
    async with runtime.session_factory() as session:
        return list((await session.execute(select(Message.attempts))).scalars().all())


@pytest.mark.parametrize("break_server", [wrong_password, sender_refused])
async def test_sender_side_refusal_pauses_suppresses_nobody_and_delivers_once_when_fixed(
    runtime: Runtime,
    dispatcher: Dispatcher,
    smtp_sink: SmtpSink,
    clock: FrozenClock,
    client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
    break_server: Callable[[SmtpSink], Callable[[], None]],
) -> None:
    fix = break_server(smtp_sink)
    await seed_messages(runtime, MESSAGES)

    with caplog.at_level(logging.WARNING, logger="app.outbox.dispatcher"):
        report = await dispatcher.drain()
    outcomes = report.outcomes
    # Sends already in flight when the third failure paused sending fail alike; the rest
    # of the batch waits for the pause without trying.
    assert set(outcomes) <= {"sender_fault", "deferred"}, outcomes
    assert outcomes["sender_fault"] >= 3
    assert sum(outcomes.values()) == MESSAGES
    assert await suppressed(runtime) == []
    assert smtp_sink.received == []
    assert await attempts_used(runtime) == [0] * MESSAGES  # no try at any recipient
    reason = "535 5.7.8" if break_server is wrong_password else "550 5.7.1"
    [warning] = [r for r in caplog.records if "sending paused" in r.getMessage()]
    assert reason in warning.getMessage()
    assert "@example.org" not in warning.getMessage()  # no recipient in the log

    ready = await client.get("/readyz")
    assert ready.status_code == 200  # intake stays ready; the messages wait
    sending = ready.json()["checks"]["sending"]
    assert sending["status"] == "paused"
    [paused] = sending["workers"]
    assert paused["worker"] == "worker-sender-side"
    assert reason in paused["reason"]
    assert paused["until"] == (clock.now() + timedelta(seconds=30)).isoformat()
    metrics = (await client.get("/metrics")).text
    assert "aftersale_sending_paused_workers 1.0" in metrics

    # Still paused: nothing is claimed, however often the clock drives the dispatcher.
    clock.advance(seconds=29)
    assert (await dispatcher.drain()).claimed == 0
    # The pause is over but the server is still broken: one probe, and a pause twice as long.
    clock.advance(seconds=1)
    probe = await dispatcher.drain()
    assert (probe.claimed, probe.outcomes) == (1, {"sender_fault": 1})
    async with runtime.session_factory() as session:
        row = (await session.execute(select(SenderPause))).scalar_one()
    assert row.paused_until == clock.now() + timedelta(seconds=60)
    assert row.failures == outcomes["sender_fault"] + 1

    fix()
    clock.advance(seconds=60)
    rounds = await drain_until_settled(dispatcher, clock)
    assert rounds == [{"sent": MESSAGES}]  # the probe went, then the rest in the same drain
    ledger = await take_ledger(runtime, smtp_sink)
    assert (ledger.lost, ledger.duplicates, ledger.unrecorded) == (0, 0, 0), ledger
    assert ledger.statuses == {"sent": MESSAGES}
    assert await suppressed(runtime) == []
    assert await attempts_used(runtime) == [1] * MESSAGES
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["sending"] == {"status": "ok"}
    assert "aftersale_sending_paused_workers 0.0" in (await client.get("/metrics")).text
    async with runtime.session_factory() as session:
        faults = (
            await session.execute(
                select(MessageAttempt.smtp_code).where(MessageAttempt.outcome == "sender_fault")
            )
        ).scalars()
        assert set(faults) == {535 if break_server is wrong_password else 550}


async def test_mailbox_gone_at_rcpt_suppresses_only_that_address(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, MESSAGES)
    smtp_sink.rcpt_reply = lambda address: (
        "550 5.1.1 <user3@example.org>: Recipient address rejected: User unknown"
        if address == "user3@example.org"
        else None
    )
    assert await drain_until_settled(dispatcher, clock) == [{"sent": 11, "failed": 1}]
    assert await suppressed(runtime) == [("user3@example.org", "hard_bounce")]
    assert dispatcher.breaker.pause is None


async def test_policy_refusal_after_data_fails_the_message_and_keeps_the_address(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, MESSAGES)
    smtp_sink.data_reply = lambda _recipients: "554 5.7.1 Message rejected as spam"
    assert await drain_until_settled(dispatcher, clock) == [{"failed": MESSAGES}]
    assert await suppressed(runtime) == []
    assert dispatcher.breaker.pause is None  # the server answered about the message
    async with runtime.session_factory() as session:
        rows = (await session.execute(select(Message.status, Message.status_reason))).all()
    assert set(rows) == {("failed", "rejected")}
    ledger = await take_ledger(runtime, smtp_sink)
    assert ledger.received == 0


async def test_unreachable_server_pauses_and_resumes_by_itself(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    smtp_sink.stop()
    await seed_messages(runtime, MESSAGES)
    first = await dispatcher.drain()
    assert set(first.outcomes) <= {"sender_fault", "deferred"}
    assert dispatcher.breaker.pause is not None
    smtp_sink.start()
    rounds = await drain_until_settled(dispatcher, clock)
    assert rounds == [{"sent": MESSAGES}]
    assert dispatcher.breaker.pause is None
    ledger = await take_ledger(runtime, smtp_sink)
    assert (ledger.lost, ledger.duplicates) == (0, 0), ledger
