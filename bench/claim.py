"""Claim latency and worker memory at 1M pending messages against 10k, in the same run.

Each size has its own outbox side by side (PostgreSQL: schemas `bench_claim_10k` and
`bench_claim_1m` of the database, DROPPED and made again; SQLite: two files). Both hold the
same steady set of due messages (default 500: thank-you and restock mails of real orders,
due within the last hour) among pending ones due months or years ahead (restock and
cross-sell mails and birthdays, 30 days to 3 years out, ten per customer), written with
COPY on PostgreSQL, then VACUUM ANALYZE as autovacuum would leave them.

Latency: the dispatcher's own claim (`repository.claim_due_messages` in its transaction,
batch size from the settings), timed `--claims` times after a warm-up, the two sizes in
turns so a busy machine slows both alike; each claimed batch is put back untimed, so the
due set keeps its size. Memory: a worker process (`app.worker.Worker`, what `aftersale
serve --role worker` runs: scheduler, dispatcher, periodic jobs) sends the due set to an
aiosmtpd sink in another process (the same claims at both sizes); its peak RSS (VmHWM in
/proc) is read once all have arrived.

    python bench/claim.py [--small 10000] [--large 1000000] [--due 500] [--claims 600]
                          [--quick] [--database-url URL]

Default database: AFTERSALE_BENCH_DATABASE_URL, else a fresh SQLite file (there --large
defaults to 200,000: a million rows take SQLite several minutes to insert). For PostgreSQL
pass e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bench (schema public is DROPPED).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, update

from app.clock import SystemClock
from app.config import ROOT, Settings
from app.db import create_engine, create_session_factory, transaction
from app.models import Customer, Message, MessageStatus
from app.outbox import repository
from app.preview.lint import TemplateCheck
from app.rules.loader import RuleSet
from app.rules.source import RulesSource
from app.runtime import Runtime

# The bench folder is not a package: its shared modules are imported from beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from outbox_data import (
    SHOP,
    catch_up_sequences,
    insert_all,
    insert_rows,
    load_rules,
    orders_with_messages,
    reset_schema,
)
from sink import SinkProcess

MESSAGES_PER_CUSTOMER = 10
# Far-ahead mail: (rule, share); birthdays have no order.
FAR_RULES = (("cartridges-restock", 4), ("coffee-next-variety", 3), ("birthday", 3))


def far_customers(first_id: int, count: int, now: datetime) -> Iterator[dict[str, Any]]:
    for customer_id in range(first_id, first_id + count):
        yield {
            "id": customer_id,
            "shop": SHOP,
            "external_id": f"c-{customer_id}",
            "email": f"customer{customer_id}@example.org",
            "first_name": "Anna",
            "locale": "en",
            "time_zone": "Europe/Berlin",
            "tags": [],
            "attributes": {},
            "marketing_consent": True,
            "source_updated_at": now,
            "created_at": now,
            "updated_at": now,
        }


def far_messages(
    first_id: int, count: int, *, customers: range, now: datetime, rules: RuleSet, seed: int
) -> Iterator[dict[str, Any]]:
    """`count` scheduled messages due 30 days to 3 years from `now`."""
    rng = random.Random(seed)
    kinds = [rules.by_id(rule_id) for rule_id, share in FAR_RULES for _ in range(share)]
    for message_id in range(first_id, first_id + count):
        rule = rng.choice(kinds)
        assert rule is not None
        send_at = now + timedelta(days=30 + rng.random() * 1065)
        expiry = rule.send.expiry
        yield {
            "id": message_id,
            "customer_id": customers[message_id % len(customers)],
            "order_id": None,
            "rule_id": rule.id,
            "rule_version": rule.version,
            "template": rule.template,
            "kind": rule.kind,
            "variant": None,
            "dedupe_key": f"{rule.id}:bench:{message_id}",
            "status": MessageStatus.SCHEDULED,
            "status_reason": None,
            "send_at": send_at,
            "expires_at": expiry.add_to(send_at) if expiry else None,
            "next_attempt_at": send_at,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }


async def grow(runtime: Runtime, pending: int, rules: RuleSet, seed: int) -> float:
    """Add far-ahead messages (and their customers) until `pending` are scheduled."""
    started = time.perf_counter()
    async with runtime.engine.begin() as connection:
        have = (
            await connection.execute(
                select(func.count()).where(Message.status == MessageStatus.SCHEDULED)
            )
        ).scalar_one()
        last_message = (await connection.execute(select(func.max(Message.id)))).scalar_one()
        last_customer = (await connection.execute(select(func.max(Customer.id)))).scalar_one()
        adding = pending - have
        new = max(1, adding // MESSAGES_PER_CUSTOMER)
        now = runtime.clock.now()
        await insert_rows(
            connection, Customer.__table__, far_customers(last_customer + 1, new, now)
        )
        customers = range(last_customer + 1, last_customer + 1 + new)
        await insert_rows(
            connection,
            Message.__table__,
            far_messages(
                last_message + 1, adding, customers=customers, now=now, rules=rules, seed=seed
            ),
        )
        await catch_up_sequences(connection)
    # Fresh planner statistics, as autovacuum would leave them after such a load.
    autocommit = runtime.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as connection:
        vacuum = "VACUUM ANALYZE messages" if connection.dialect.name == "postgresql" else "ANALYZE"
        await connection.execute(text(vacuum))
    return time.perf_counter() - started


async def claim_once(runtime: Runtime) -> float:
    """Milliseconds of one claim (the dispatcher's transaction); the batch is put back after."""
    settings = runtime.settings
    started = time.perf_counter()
    async with transaction(runtime.session_factory) as session:
        ids = await repository.claim_due_messages(
            session,
            worker_id="bench-claimer",
            now=runtime.clock.now(),
            lease=timedelta(seconds=settings.lease_seconds),
            limit=settings.dispatch_batch_size,
        )
    elapsed = (time.perf_counter() - started) * 1000
    if len(ids) != settings.dispatch_batch_size:
        raise SystemExit(f"claimed {len(ids)}, expected {settings.dispatch_batch_size}")
    async with transaction(runtime.session_factory) as session:
        await session.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(
                status=MessageStatus.SCHEDULED,
                next_attempt_at=Message.send_at,
                claimed_by=None,
                attempts=Message.attempts - 1,
            )
        )
    return elapsed


async def claim_latencies(stores: dict[int, Runtime], claims: int) -> dict[int, list[float]]:
    """Each size's claim latencies, timed in turns so a busy machine slows both alike."""
    latencies: dict[int, list[float]] = {size: [] for size in stores}
    turn = list(stores.items())
    for number in range(claims + 20):
        turn.reverse()  # neither size always goes first
        for size, runtime in turn:
            elapsed = await claim_once(runtime)
            if number >= 20:  # warm-up: connections, statement caches
                latencies[size].append(elapsed)
    return latencies


def worker_peak_rss(url: str, schema: str | None, sink: SinkProcess, due: int) -> float:
    """Peak RSS (MB) of a worker process (app.worker.Worker) once it has sent the due set."""
    env = {
        **os.environ,
        "AFTERSALE_DATABASE_URL": url,
        "AFTERSALE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}?starttls=off",
        "AFTERSALE_RULES_DIR": str(ROOT / "rules"),
    }
    worker = subprocess.Popen(
        [sys.executable, __file__, "--run-worker", *(["--schema", schema] if schema else [])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while sink.count()[0] < due:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker sent {sink.count()[0]} of {due} in 10 minutes")
            time.sleep(0.2)
        status = Path(f"/proc/{worker.pid}/status").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    received, _ = sink.count()
    sink.take()
    if received != due:
        raise SystemExit(f"the sink received {received} messages, expected {due}")
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(peak.split()[1]) / 1024


async def run_worker(schema: str | None) -> None:
    """What `aftersale serve --role worker` runs (app.worker.Worker: the scheduler, the
    dispatcher and the periodic jobs), on the given PostgreSQL schema, until SIGTERM."""
    import signal

    from app.worker import Worker

    settings = Settings()
    runtime = store(settings, schema)
    worker = Worker(runtime)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await worker.start()
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await runtime.close()


def store(settings: Settings, schema: str | None) -> Runtime:
    """A runtime on `schema` of the PostgreSQL database, or on the database as it is."""
    if schema is None:
        return Runtime.create(settings, templates=TemplateCheck.for_settings(settings))
    engine = create_engine(
        settings.database_url, connect_args={"server_settings": {"search_path": schema}}
    )
    rules = RulesSource(settings.rules_dir)
    rules.reload()
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        rules=rules,
        clock=SystemClock(),
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, help="default 1,000,000 (SQLite: 200,000)")
    parser.add_argument("--due", type=int, default=500)
    parser.add_argument("--claims", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="10k and 50k, 200 due, 200 claims")
    parser.add_argument("--database-url", default=os.environ.get("AFTERSALE_BENCH_DATABASE_URL"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_worker:
        await run_worker(args.schema)
        return
    if args.quick:
        args.large, args.due, args.claims = 50_000, 200, 200
    with tempfile.TemporaryDirectory() as folder:
        postgres = bool(args.database_url) and args.database_url.startswith("postgresql")
        if args.large is None:
            args.large = 1_000_000 if postgres else 200_000
        stores: dict[int, Runtime] = {}
        where: dict[int, tuple[str, str | None]] = {}
        sink = SinkProcess().start()
        try:
            for size in (args.small, args.large):
                # Both sizes side by side: schemas of the PostgreSQL database, or two files.
                schema = f"bench_claim_{label(size).lower()}" if postgres else None
                url = args.database_url if postgres else f"sqlite+aiosqlite:///{folder}/{size}.db"
                settings = Settings(database_url=url, rules_dir=ROOT / "rules", _env_file=None)  # type: ignore[call-arg]
                stores[size] = store(settings, schema)
                where[size] = (url, schema)
            await bench(stores, where, sink, args)
        finally:
            sink.stop()
            for runtime in stores.values():
                await runtime.close()


async def bench(
    stores: dict[int, Runtime],
    where: dict[int, tuple[str, str | None]],
    sink: SinkProcess,
    args: argparse.Namespace,
) -> None:
    rules = load_rules()
    batch = next(iter(stores.values())).settings.dispatch_batch_size
    dialect = ""
    for size, runtime in stores.items():
        dialect = runtime.engine.dialect.name
        _, schema = where[size]
        await reset_schema(runtime.engine, schema or "public")
        due = orders_with_messages(
            args.due,
            due=runtime.clock.now(),
            spread=timedelta(hours=1),
            rules=rules,
            rng=random.Random(args.seed),
        )
        await insert_all(runtime.engine, due)
        seconds = await grow(runtime, size, rules, args.seed)
        print(f"{dialect}: {label(size)} pending ({args.due} due now) written in {seconds:.1f} s")
    latencies = await claim_latencies(stores, args.claims)
    peaks = {}
    for size in stores:
        peaks[size] = worker_peak_rss(*where[size], sink, args.due)
        print(
            f"  {label(size):>4} pending: claim of {batch} p50 "
            f"{statistics.median(latencies[size]):.2f} ms, "
            f"p99 {percentile(latencies[size], 0.99):.2f} ms ({args.claims} claims, in turns); "
            f"worker peak RSS {peaks[size]:.0f} MB after sending {args.due}"
        )
    ours, baseline = (
        percentile(latencies[args.large], 0.99),
        percentile(latencies[args.small], 0.99),
    )
    print(
        f"claim ({dialect}): ours p99 {ours:.2f} ms at {label(args.large)} pending, "
        f"baseline p99 {baseline:.2f} ms at {label(args.small)} pending, "
        f"ratio {ours / baseline:.2f} (goal <= 1.5); worker RSS {peaks[args.large]:.0f} MB at "
        f"{label(args.large)} vs {peaks[args.small]:.0f} MB at {label(args.small)}"
    )


def label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size % 1000 == 0:
        return f"{size // 1000}k"
    return f"{size:,}"


if __name__ == "__main__":
    asyncio.run(main())
