"""Scale-out on one PostgreSQL: two `serve --role api` and two `serve --role worker` processes.

Orders go alternately to both API processes, concurrently, while both workers send. Every
planned message must reach the SMTP server exactly once (counted by Message-ID), and both
workers must have done a fair part of the work: their claims (`FOR UPDATE SKIP LOCKED`)
share the outbox without a message going twice or being left behind.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import Message, MessageAttempt, MessageStatus
from tests.factories import order_created, signed_headers
from tests.smtp_sink import SmtpSink, free_port
from tests.test_processes import process, service_env, wait_for

pytestmark = pytest.mark.slow

ORDERS = 1000
RULES_PER_ORDER = 5  # each order plans one message per rule: 5,000 messages
MESSAGES = ORDERS * RULES_PER_ORDER
# Each worker must have sent at least this share: the claims spread the work.
FAIR_SHARE = 0.2
CONCURRENCY = 16


def rules_folder(tmp_path: Path) -> Path:
    """Five transactional rules on order.created, each sending the thank-you at once."""
    folder = tmp_path / "scale-rules"
    folder.mkdir()
    rules = "\n".join(
        f"  - id: thank-you-{n}\n    kind: transactional\n    when: {{event: order.created}}\n"
        f"    send: {{after: 0m}}\n    template: thank-you"
        for n in range(1, RULES_PER_ORDER + 1)
    )
    (folder / "scale.yaml").write_text(f"rules:\n{rules}\n")
    return folder


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent), labels in any order."""
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if sample_name == name and found == labels:
            return float(value)
    return 0.0


async def post_orders(api_urls: list[str]) -> Counter[str]:
    """ORDERS orders, alternately to each API process, CONCURRENCY at a time; 200s per URL."""
    now = datetime.now(UTC).isoformat()
    answered: Counter[str] = Counter()
    numbers = iter(range(ORDERS))
    async with httpx.AsyncClient(timeout=60) as http:

        async def post() -> None:
            for number in numbers:
                url = api_urls[number % len(api_urls)]
                body = order_created(
                    order_id=f"{500000000 + number}",
                    customer_id=f"scale-{number}",
                    email=f"buyer{number}@example.org",
                    created_at=now,
                    occurred_at=now,
                )
                raw = json.dumps(body).encode()
                response = await http.post(
                    url + "/webhooks/orders", content=raw, headers=signed_headers(raw)
                )
                assert response.status_code == 200, response.text
                answered[url] += 1

        await asyncio.gather(*(post() for _ in range(CONCURRENCY)))
    return answered


async def wait_ready(url: str) -> None:
    """Like tests.test_processes.wait_http, with time for four processes starting at once."""

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(url + "/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(up, timeout=90)


async def unfinished(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    select(func.count()).where(
                        Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.SENDING])
                    )
                )
            ).scalar_one()
        )


async def test_two_apis_and_two_workers_send_every_message_once_and_share_the_work(
    engine: AsyncEngine, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "scale-out is a PostgreSQL deployment: SQLite has one writer, so it runs one "
            "worker (docs/deployment.md); set AFTERSALE_TEST_DATABASE_URL to a PostgreSQL"
        )
    env = service_env(
        database_url, AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off"
    )
    env["AFTERSALE_RULES_DIR"] = str(rules_folder(tmp_path))
    api_ports = [free_port(), free_port()]
    metrics_ports = [free_port(), free_port()]
    api_urls = [f"http://127.0.0.1:{port}" for port in api_ports]
    with (
        process("serve", "--role", "api", "--port", str(api_ports[0]), env=env, tmp_path=tmp_path),
        process("serve", "--role", "api", "--port", str(api_ports[1]), env=env, tmp_path=tmp_path),
        process(
            "serve",
            "--role",
            "worker",
            env={**env, "AFTERSALE_WORKER_METRICS_PORT": str(metrics_ports[0])},
            tmp_path=tmp_path,
        ),
        process(
            "serve",
            "--role",
            "worker",
            env={**env, "AFTERSALE_WORKER_METRICS_PORT": str(metrics_ports[1])},
            tmp_path=tmp_path,
        ),
    ):
        for url in api_urls:
            await wait_ready(url)
        began = time.monotonic()
        answered = await post_orders(api_urls)
        intake_seconds = time.monotonic() - began

        async def all_sent() -> bool:
            return await unfinished(engine) == 0 and len(smtp_sink.received) >= MESSAGES

        # Generous: a loaded shared machine took over 9 minutes; a quiet one needs far less.
        await wait_for(all_sent, timeout=900)
        send_seconds = time.monotonic() - began
        await asyncio.sleep(1)  # a twin would be sent before its row is recorded: none late
        async with httpx.AsyncClient() as http:
            worker_texts = [
                (await http.get(f"http://127.0.0.1:{port}/metrics")).text for port in metrics_ports
            ]
            api_texts = [(await http.get(f"{url}/metrics")).text for url in api_urls]
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "Traceback" not in logs, logs[-5000:]

    message_ids = Counter(smtp_sink.message_ids())
    assert len(smtp_sink.received) == MESSAGES  # no mail twice...
    assert len(message_ids) == MESSAGES  # ...and no message left out
    async with engine.connect() as connection:
        rows = (await connection.execute(select(Message.status, Message.smtp_message_id))).all()
        attempts = Counter(
            (message_id, outcome)
            for message_id, outcome in await connection.execute(
                select(MessageAttempt.message_id, MessageAttempt.outcome)
            )
        )
    assert Counter(row.status for row in rows) == {MessageStatus.SENT: MESSAGES}
    assert {row.smtp_message_id for row in rows} == set(message_ids)
    # One attempt per message, and it was the send: no message was claimed twice.
    assert len(attempts) == MESSAGES and set(attempts.values()) == {1}
    assert {outcome for _, outcome in attempts} == {"sent"}

    sent_by_worker = [
        metric(text, "aftersale_send_duration_seconds_count") for text in worker_texts
    ]
    accepted_by_api = [
        metric(text, "aftersale_webhooks_total", source="aftersale", outcome="accepted")
        for text in api_texts
    ]
    print(
        f"\nscale-out: {ORDERS} orders in {intake_seconds:.1f} s "
        f"({ORDERS / intake_seconds:.0f} orders/s over 2 API processes: "
        f"{', '.join(f'{n:.0f}' for n in accepted_by_api)}); "
        f"{MESSAGES} mails in {send_seconds:.1f} s from the first order "
        f"({MESSAGES / send_seconds:.0f} mails/s); per worker: "
        f"{', '.join(f'{n:.0f} ({n / MESSAGES:.0%})' for n in sent_by_worker)}"
    )
    assert sum(sent_by_worker) == MESSAGES
    assert all(sent >= FAIR_SHARE * MESSAGES for sent in sent_by_worker), sent_by_worker
    assert accepted_by_api == [ORDERS / 2, ORDERS / 2]
    assert sorted(answered.values()) == [ORDERS // 2, ORDERS // 2]
