"""Four `serve --role worker` processes on one PostgreSQL share 20,000 due messages.

tests/test_scale_out.py drives orders through two API processes, the honest path; but
there intake sets the pace (31 orders/s while its workers send, 121-171 orders/s for one
API process alone: docs/performance.md), so 20,000 messages that way would spend minutes
trickling in, and the workers would share a trickle, not a backlog. What this test checks
is the claim (`FOR UPDATE SKIP LOCKED`, docs/deployment.md "How work is shared") under four
competing workers, so the outbox is seeded in bulk instead: customers, orders, items and due
messages written with COPY exactly as bench/outbox_data.py writes them for the dispatch
and claim benchmarks (the columns intake fills, the shipped rules' ids, versions,
templates, kinds and expiries: half thank-you mails, half restock or cross-sell mails).
They are committed in one transaction once all four workers are up, so every worker
starts with the same backlog and a fair share is a fair test. Every mail must reach the
SMTP sink exactly once (by Message-ID), with one attempt each, and each worker must have
sent a fair part. Sending a diapers-restock mail plans its sequence's second step days
ahead: those rows must still be planned, not sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import shutil
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import SystemClock
from app.config import ROOT
from app.models import Message, MessageAttempt, MessageStatus
from tests.smtp_sink import SmtpSink, free_port
from tests.test_processes import process, service_env, wait_for
from tests.test_scale_out import metric

pytestmark = pytest.mark.slow

WORKERS = 4
MESSAGES = 20_000
# Each worker must have sent at least this share (an even split is 25 %).
FAIR_SHARE = 0.15
# The shipped rules the seeded messages name, and the marketing cap they are sent under;
# no birthday, win-back or other rule whose periodic job could plan more mail.
RULE_FILES = (
    "thank-you.yaml",
    "diapers-restock.yaml",
    "cartridges-restock.yaml",
    "coffee-next-variety.yaml",
    "limits.yaml",
)


def bench_module(name: str) -> ModuleType:
    """A module of bench/, which is not a package (its scripts import each other by name)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def rules_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name in RULE_FILES:
        shutil.copy(ROOT / "rules" / name, folder)
    return folder


async def unfinished(engine: AsyncEngine, ids: range) -> int:
    """How many of these messages are still to send (planned or being sent)."""
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    select(func.count()).where(
                        Message.id.between(ids.start, ids.stop - 1),
                        Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.SENDING]),
                    )
                )
            ).scalar_one()
        )


def message_id(raw: bytes) -> str:
    """The Message-ID header, reading the headers only: parsing 20,000 bodies takes long."""
    headers = BytesHeaderParser().parsebytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    return str(headers["Message-ID"]).strip()


async def wait_metrics(port: int) -> None:
    """A worker answers on its metrics port once its scheduler and dispatcher run."""

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_for(up, timeout=90)


async def test_four_workers_share_20000_messages_each_sent_once(
    engine: AsyncEngine, database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "scale-out is a PostgreSQL deployment: SQLite has one writer, so it runs one "
            "worker (docs/deployment.md); set AFTERSALE_TEST_DATABASE_URL to a PostgreSQL"
        )
    outbox_data = bench_module("outbox_data")
    rows = outbox_data.orders_with_messages(
        MESSAGES,
        due=SystemClock().now(),
        spread=timedelta(minutes=10),
        rules=outbox_data.load_rules(),
        rng=random.Random(20),
    )
    # Ids 1 to MESSAGES (rows the service adds later get ids above them).
    seeded = range(rows.messages[0]["id"], rows.messages[-1]["id"] + 1)
    assert [row["id"] for row in rows.messages] == list(seeded) and len(seeded) == MESSAGES
    env = service_env(
        database_url, AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{smtp_sink.port}?starttls=off"
    )
    env["AFTERSALE_RULES_DIR"] = str(rules_folder(tmp_path))
    metrics_ports = [free_port() for _ in range(WORKERS)]
    with ExitStack() as stack:
        for port in metrics_ports:
            stack.enter_context(
                process(
                    "serve",
                    "--role",
                    "worker",
                    env={**env, "AFTERSALE_WORKER_METRICS_PORT": str(port)},
                    tmp_path=tmp_path,
                )
            )
        for port in metrics_ports:
            await wait_metrics(port)
        seeding = time.monotonic()
        await outbox_data.insert_all(engine, rows)  # one transaction: all due at once
        began = time.monotonic()
        # This process's CPU while the workers send is the sink's (its thread) and the
        # polling below: what it costs per mail shows whether the sink could hold them back.
        cpu = time.process_time()

        async def all_sent() -> bool:
            return len(smtp_sink.received) >= MESSAGES and await unfinished(engine, seeded) == 0

        # Generous: 107 to 297 s on a shared 2-core machine (docs/performance.md).
        await wait_for(all_sent, timeout=900)
        send_seconds = time.monotonic() - began
        sink_ms = 1000 * (time.process_time() - cpu) / MESSAGES
        await asyncio.sleep(1)  # a twin would be sent before its row is recorded: none late
        async with httpx.AsyncClient() as http:
            texts = [
                (await http.get(f"http://127.0.0.1:{port}/metrics")).text for port in metrics_ports
            ]
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "Traceback" not in logs, logs[-5000:]

    message_ids = Counter(message_id(item.raw) for item in smtp_sink.received)
    assert len(smtp_sink.received) == MESSAGES  # no mail twice...
    assert len(message_ids) == MESSAGES  # ...and no message left out
    async with engine.connect() as connection:
        sent = (
            await connection.execute(
                select(Message.status, Message.smtp_message_id).where(
                    Message.id.between(seeded.start, seeded.stop - 1)
                )
            )
        ).all()
        # Sending a sequence's step plans the next (diapers-restock's second step, days
        # ahead): planned, not due, so no worker may have sent it.
        following = (
            await connection.execute(
                select(Message.status, Message.step).where(Message.id >= seeded.stop)
            )
        ).all()
        attempts = Counter(
            (row_id, outcome)
            for row_id, outcome in await connection.execute(
                select(MessageAttempt.message_id, MessageAttempt.outcome)
            )
        )
    assert Counter(row.status for row in sent) == {MessageStatus.SENT: MESSAGES}
    assert {row.smtp_message_id for row in sent} == set(message_ids)
    assert {(row.status, row.step) for row in following} <= {(MessageStatus.SCHEDULED, 2)}
    # One attempt per message, and it was the send: no message was claimed twice.
    assert len(attempts) == MESSAGES and set(attempts.values()) == {1}
    assert {outcome for _, outcome in attempts} == {"sent"}

    shares = [metric(text, "aftersale_send_duration_seconds_count") for text in texts]
    print(
        f"\nscale-out, {WORKERS} workers: {MESSAGES} due messages seeded in "
        f"{began - seeding:.1f} s, all sent once in {send_seconds:.1f} s "
        f"({MESSAGES / send_seconds:.0f} mails/s); per worker: "
        f"{', '.join(f'{n:.0f} ({n / MESSAGES:.1%})' for n in shares)}; "
        f"the sink and this test used {sink_ms:.2f} ms CPU per mail "
        f"({sink_ms * MESSAGES / send_seconds / 10:.0f} % of a core)"
    )
    assert sum(shares) == MESSAGES
    assert all(n >= FAIR_SHARE * MESSAGES for n in shares), shares
