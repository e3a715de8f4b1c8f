"""The SMTP server misbehaves: down and back, hanging, a storm of 4xx, 5xx for everyone.

Each test ends with the ledger (tests/faults/ledger.py): nothing lost, duplicates counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from app.config import Settings
from app.models import MessageAttempt, Suppression
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.faults.ledger import take_ledger
from tests.outbox.conftest import make_dispatcher
from tests.outbox.test_workers import seed_messages
from tests.smtp_sink import SmtpSink


@pytest.fixture
def settings(settings: Settings, smtp_sink: SmtpSink) -> Settings:
    # A short SMTP timeout (the pool's overall deadline is six of them), so a hung server
    # costs this test a second, not minutes.
    return settings.model_copy(
        update={
            "smtp_url": f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off&pool_size=2&timeout=0.5"
        }
    )


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-faults")
    yield worker
    await worker.sender.close()


async def drain_until_settled(
    dispatcher: Dispatcher, clock: FrozenClock, *, rounds: int = 20
) -> list[dict[str, int]]:
    """Move the clock past any backoff and drain, until a drain finds nothing due."""
    outcomes = []
    for _ in range(rounds):
        clock.advance(hours=7)  # beyond the longest backoff (retry_max_seconds, 6 h)
        report = await dispatcher.drain()
        if report.claimed == 0:
            return outcomes
        outcomes.append(report.outcomes)
    raise AssertionError(f"still sending after {rounds} rounds: {outcomes}")


async def attempt_log(runtime: Runtime) -> Counter[tuple[tuple[str, int | None], ...]]:
    """How many messages went through each sequence of (outcome, SMTP code) attempts."""
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(
                    MessageAttempt.message_id, MessageAttempt.outcome, MessageAttempt.smtp_code
                ).order_by(MessageAttempt.message_id, MessageAttempt.id)
            )
        ).all()
    sequences: dict[int, list[tuple[str, int | None]]] = {}
    for message_id, outcome, code in rows:
        sequences.setdefault(message_id, []).append((outcome, code))
    return Counter(tuple(sequence) for sequence in sequences.values())


async def test_smtp_down_then_back_sends_each_message_once(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, 10)
    # Up first, so the pool holds connections when the server goes away under them.
    assert (await dispatcher.drain()).outcomes == {"sent": 10}
    smtp_sink.stop()
    await seed_messages(runtime, 20, first=10)
    # No server is the sender's problem: after a run of failures the worker pauses, and the
    # messages not yet tried wait without trying (tests/faults/test_sender_side.py).
    down = (await dispatcher.drain()).outcomes
    assert set(down) == {"sender_fault", "deferred"} and sum(down.values()) == 20, down
    ledger = await take_ledger(runtime, smtp_sink)
    assert ledger.statuses == {"sent": 10, "scheduled": 20}
    smtp_sink.start()
    assert (await dispatcher.drain()).claimed == 0  # paused, although it is back
    rounds = await drain_until_settled(dispatcher, clock)
    assert rounds == [{"sent": 20}]
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert (ledger.lost, ledger.duplicates, ledger.unrecorded) == (0, 0, 0), ledger
    assert ledger.statuses == {"sent": 30}
    assert await attempt_log(runtime) == {
        (("sent", 250),): 10 + down["deferred"],
        # None: no SMTP reply, the connection failed
        (("sender_fault", None), ("sent", 250)): down["sender_fault"],
    }


async def test_hung_server_times_out_one_send_and_the_batch_goes_on(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, 12)
    hung = "user3@example.org"
    smtp_sink.data_hangs = lambda recipients: hung in recipients
    started = time.monotonic()
    report = await dispatcher.run_once()
    elapsed = time.monotonic() - started
    # One batch: the hung send timed out (0.5 s) while the other connection sent the rest.
    assert (report.claimed, report.outcomes) == (12, {"sent": 11, "retry": 1})
    assert elapsed < 5, elapsed
    ledger = await take_ledger(runtime, smtp_sink)
    assert ledger.statuses == {"sent": 11, "scheduled": 1}
    assert sorted(mail.recipients[0] for mail in smtp_sink.received) == sorted(
        f"user{n}@example.org" for n in range(12) if n != 3
    )
    smtp_sink.data_hangs = lambda _recipients: False  # the server recovers
    assert await drain_until_settled(dispatcher, clock) == [{"sent": 1}]
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert (ledger.lost, ledger.duplicates, ledger.unrecorded) == (0, 0, 0), ledger
    assert await attempt_log(runtime) == {(("sent", 250),): 11, (("retry", None), ("sent", 250)): 1}


async def test_storm_of_451_then_ok_delivers_each_once(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, 25)
    refusals = 3
    refused: Counter[str] = Counter()

    def greylist(address: str) -> str | None:
        if refused[address] < refusals:
            refused[address] += 1
            return "451 4.7.1 Greylisted, try again later"
        return None

    smtp_sink.rcpt_reply = greylist
    rounds = await drain_until_settled(dispatcher, clock)
    assert rounds == [{"retry": 25}] * refusals + [{"sent": 25}]
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert (ledger.lost, ledger.duplicates, ledger.unrecorded) == (0, 0, 0), ledger
    assert ledger.statuses == {"sent": 25}
    assert set(refused.values()) == {refusals}
    assert await attempt_log(runtime) == {(("retry", 451),) * refusals + (("sent", 250),): 25}


async def test_permanent_refusals_fail_and_suppress_and_deliver_nothing(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    await seed_messages(runtime, 15)
    smtp_sink.rcpt_reply = lambda _address: "550 5.1.1 No such user here"
    assert await drain_until_settled(dispatcher, clock) == [{"failed": 15}]
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert (ledger.lost, ledger.duplicates) == (0, 0), ledger
    assert (ledger.statuses, ledger.received) == ({"failed": 15}, 0)
    async with runtime.session_factory() as session:
        suppressed = (await session.execute(select(Suppression.email, Suppression.reason))).all()
    assert sorted(suppressed) == sorted((f"user{n}@example.org", "hard_bounce") for n in range(15))
    assert await attempt_log(runtime) == {(("failed", 550),): 15}
