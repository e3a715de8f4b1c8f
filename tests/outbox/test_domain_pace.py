"""No head-of-line blocking (issue 15, item 5): a domain's rate limit holds only its own mail.

A message that would wait for its domain's slot takes the slot and waits in the outbox
instead of in the batch; mail to other domains goes on at once.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.config import Settings
from app.models import Customer, Message
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import seed_due_messages
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink

LIMITED = [f"kunde{n}@gmail.com" for n in range(100)]
OTHERS = [f"customer{n}@example.org" for n in range(100)]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"smtp_domain_rates": {"gmail.com": 60}})


class RunningClock(FrozenClock):
    """The test clock, running with real time: the rate buckets measure real time too."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self.current + timedelta(seconds=time.monotonic() - self._started)


@pytest.fixture
def clock() -> FrozenClock:
    return RunningClock(datetime(2026, 11, 20, 10, 0, tzinfo=UTC))


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-pace")
    yield worker
    await worker.sender.close()


async def test_a_limited_domain_does_not_hold_the_others(
    runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    # Interleaved, so every batch has both kinds, as a real queue would.
    await seed_due_messages(
        runtime, *[a for pair in zip(LIMITED, OTHERS, strict=True) for a in pair]
    )
    started = time.monotonic()
    report = await dispatcher.drain()
    elapsed = time.monotonic() - started

    received = {mail.recipients[0] for mail in smtp_sink.received}
    assert set(OTHERS) <= received  # every other domain's mail has left ...
    assert elapsed < 10, elapsed  # ... within seconds, not the 100 s gmail.com needs
    sent_limited = received & set(LIMITED)
    # The slots that came while the drain ran (one a second), the first one or two inline.
    assert 1 <= len(sent_limited) <= 2 + elapsed, (len(sent_limited), elapsed)
    assert set(report.outcomes) == {"sent", "deferred"}
    assert report.outcomes["sent"] == 100 + len(sent_limited)  # each once
    # Every gmail.com message still waiting was put aside once; on a slow machine a slot can
    # come while the drain still runs, and the message put aside for it goes in that drain.
    assert 100 - len(sent_limited) <= report.outcomes["deferred"] <= 99

    # The rest wait in the outbox, each for its own slot, one a second (60 a minute).
    async with runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(Message.next_attempt_at, Message.status_reason, Message.attempts)
                .join(Customer, Customer.id == Message.customer_id)
                .where(Message.status == "scheduled")
                .order_by(Message.next_attempt_at)
            )
        ).all()
    assert {(reason, attempts) for _, reason, attempts in rows} == {("domain_rate", 0)}
    slots = [at for at, _, _ in rows]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots)]
    assert all(0.99 <= gap <= 1.01 for gap in gaps), gaps
    assert slots[-1] - clock.now() >= timedelta(seconds=90)

    # As their slots come, they go, without waiting again in the batch.
    clock.advance(seconds=120)
    started = time.monotonic()
    later = await dispatcher.drain()
    assert time.monotonic() - started < 10
    assert later.outcomes == {"sent": 100 - len(sent_limited)}
    assert {mail.recipients[0] for mail in smtp_sink.received} == set(LIMITED) | set(OTHERS)
    assert len(smtp_sink.received) == 200
