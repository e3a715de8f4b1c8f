"""One webhook delivered over and over, concurrently: one effect, the rest are duplicates.

The contract's 10,000 replays (AFTERSALE_FAULT_REPLAYS=10000) pass, but in-process they take
~18 ms each on a busy 2-CPU machine (3 minutes on PostgreSQL), so the suite sends 2,000 on
either database, 64 at a time: the uniqueness under test is the database's unique key on the
delivery, which the first few dozen concurrent copies already race for.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from app.models import Message, Order, WebhookDelivery
from app.outbox.dispatcher import Dispatcher
from app.runtime import Runtime
from tests.factories import order_created, signed_headers
from tests.faults.ledger import take_ledger
from tests.outbox.conftest import make_dispatcher
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow
CONCURRENCY = 64
REPLAYS = int(os.environ.get("AFTERSALE_FAULT_REPLAYS", "2000"))


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    worker = make_dispatcher(runtime, "worker-replay")
    yield worker
    await worker.sender.close()


async def count(runtime: Runtime, table: type[Order | WebhookDelivery | Message]) -> int:
    async with runtime.session_factory() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def test_one_webhook_replayed_concurrently_takes_effect_once(
    client: AsyncClient, runtime: Runtime, dispatcher: Dispatcher, smtp_sink: SmtpSink
) -> None:
    replays = REPLAYS
    raw = json.dumps(order_created(email="replayed@example.org", order_id="7001")).encode()
    headers = signed_headers(raw)
    gate = asyncio.Semaphore(CONCURRENCY)
    answers: Counter[tuple[int, str]] = Counter()

    async def deliver() -> None:
        async with gate:
            response = await client.post("/webhooks/orders", content=raw, headers=headers)
        status = response.json().get("status", "") if response.status_code == 200 else ""
        answers[(response.status_code, status or response.text[:80])] += 1

    started = time.monotonic()
    await asyncio.gather(*(deliver() for _ in range(replays)))
    elapsed = time.monotonic() - started
    print(f"{replays} concurrent replays in {elapsed:.1f} s: {dict(answers)}")
    assert answers == {(200, "accepted"): 1, (200, "duplicate"): replays - 1}
    assert await count(runtime, WebhookDelivery) == 1
    assert await count(runtime, Order) == 1
    assert await count(runtime, Message) == 1  # the thank-you, planned once

    assert (await dispatcher.drain()).outcomes == {"sent": 1}
    ledger = await take_ledger(runtime, smtp_sink)
    print(ledger)
    assert (ledger.lost, ledger.duplicates, ledger.received) == (0, 0, 1), ledger
    assert smtp_sink.received[0].recipients == ["replayed@example.org"]
