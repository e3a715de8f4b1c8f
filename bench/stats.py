"""Stats API latency at 10 million events against 100 thousand, and the rollup job's pace.

The stats API reads only the rollups (series and running totals), so this fills them as the
rollup job would leave them after 100k and after 10M raw events: 200 rules with two variants
each (400 series), messages spread over 365 days, eight events per message (opens and clicks,
people's and machines'), 2 % of sent messages converting. The rows are written directly, not
folded from raw events, to keep the run short; the second part times the real job folding a
batch of raw events into the 10M-sized rollups, which is what keeps them there.

Queries go through the ASGI app with httpx (auth, validation, serialization included), over
a whole year: the overview, the rules table (400 rows), and a rule's timeseries by day (365
rows) and by week. Both scales live side by side and are timed in turns, `--runs` times each
after a warm-up, so a busy machine slows both alike; the figure is the sum of the four
medians.

    python bench/stats.py [--runs 25] [--fold-events 50000] [--seed 7]

SQLite (temporary files) by default; AFTERSALE_BENCH_DATABASE_URL=postgresql+asyncpg://…
runs it on PostgreSQL, in schemas `bench_100k` and `bench_10m` of that database, which are
DROPPED and recreated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import ROOT, Settings
from app.db import create_engine, create_session_factory
from app.models import (
    Customer,
    Message,
    StatsRevenueTotals,
    StatsSeries,
    StatsTotals,
    TrackingEvent,
)
from app.rules.source import RulesSource
from app.runtime import Runtime
from app.stats.rollup import fold_stats
from app.stats.tally import COUNTERS

RULES = 200
VARIANTS = ("a", "b")
DAYS = 365
FIRST_DAY = date(2026, 1, 1)
EVENTS_PER_MESSAGE = 8
KEY = "bench-api-key-0123456789"
SCALES = {"100k": 100_000, "10M": 10_000_000}


class FixedClock:
    def now(self) -> datetime:
        return datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def cell_figures(messages: int) -> dict[str, int]:
    """Plausible counts for `messages` messages of one series on one day."""
    held_out = messages // 10
    sent = (messages - held_out) * 9 // 10
    failed = (messages - held_out - sent) // 3
    skipped = messages - held_out - sent - failed
    opened = sent * 2 // 5
    clicked = sent // 8
    converted = sent // 50
    figures = dict.fromkeys(COUNTERS, 0)
    figures.update(
        planned=messages,
        sent=sent,
        failed=failed,
        bounced=failed // 2,
        skipped=skipped,
        held_out=held_out,
        opened=opened,
        opens=opened * 3 // 2,
        opened_machine=sent // 3,
        opens_machine=sent // 3,
        clicked=clicked,
        clicks=clicked * 3 // 2,
        clicked_machine=sent // 20,
        clicks_machine=sent // 10,
        unsubscribed=sent // 200,
        converted=converted,
        conversions=converted,
        held_out_converted=held_out // 100,
        held_out_conversions=held_out // 100,
    )
    return figures


def rollup_rows(
    events: int, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Series, running totals and running revenue as `events` raw events would leave them."""
    series_count = RULES * len(VARIANTS)
    cells: Counter[tuple[int, int]] = Counter()
    for _ in range(events // EVENTS_PER_MESSAGE):
        cells[(rng.randrange(series_count), rng.randrange(DAYS))] += 1
    series = [
        {
            "id": index + 1,
            "rule_id": f"rule-{index // len(VARIANTS):03d}",
            "variant": VARIANTS[index % len(VARIANTS)],
            "template": f"template-{index // len(VARIANTS):03d}",
            "currency": "",
        }
        for index in range(series_count)
    ]
    by_series: defaultdict[int, list[tuple[int, int]]] = defaultdict(list)
    for (index, day), messages in cells.items():
        by_series[index].append((day, messages))
    totals, revenue = [], []
    for index in range(series_count):
        running = dict.fromkeys(COUNTERS, 0)
        earned = Decimal(0)
        revenue_id = None
        for day, messages in sorted(by_series[index]):
            figures = cell_figures(messages)
            for name, value in figures.items():
                running[name] += value
            totals.append(
                {"series_id": index + 1, "day": FIRST_DAY + timedelta(days=day), **running}
            )
            if figures["conversions"]:
                if revenue_id is None:
                    revenue_id = len(series) + 1
                    series.append({**series[index], "id": revenue_id, "currency": "EUR"})
                earned += Decimal("49.80") * figures["conversions"]
                day_of = FIRST_DAY + timedelta(days=day)
                revenue.append({"series_id": revenue_id, "day": day_of, "revenue": earned})
    return series, totals, revenue


def chunks(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def bench_engine(url: str | None, folder: Path, label: str) -> AsyncEngine:
    """A database of its own for one scale: a file, or a PostgreSQL schema."""
    if url is None:
        return create_engine(f"sqlite+aiosqlite:///{folder / f'{label}.db'}")
    schema = f"bench_{label.lower()}"
    return create_engine(url, connect_args={"server_settings": {"search_path": schema}})


async def reset(engine: AsyncEngine, label: str) -> None:
    """An empty, migrated database."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            schema = f"bench_{label.lower()}"
            await connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await connection.execute(text(f"CREATE SCHEMA {schema}"))
        await connection.run_sync(_upgrade)


def _upgrade(connection: Any) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def fill(engine: AsyncEngine, events: int, seed: int) -> int:
    series, totals, revenue = rollup_rows(events, random.Random(seed))
    async with engine.begin() as connection:
        for table, rows in (
            (StatsSeries, series),
            (StatsTotals, totals),
            (StatsRevenueTotals, revenue),
        ):
            for part in chunks(rows):
                await connection.execute(insert(table), part)
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE"))
    return len(totals) + len(revenue)


async def time_api(runtimes: dict[str, Runtime], runs: int) -> dict[str, dict[str, float]]:
    """Median milliseconds of each query at each scale, timed in turns."""
    from app.main import create_app

    year = {"from": FIRST_DAY.isoformat(), "to": (FIRST_DAY + timedelta(days=364)).isoformat()}
    queries = {
        "overview": ("/api/v1/stats/overview", year),
        "rules": ("/api/v1/stats/rules", year),
        "timeseries/day": ("/api/v1/stats/rules/rule-007/timeseries", year),
        "timeseries/week": ("/api/v1/stats/rules/rule-007/timeseries", {**year, "bucket": "week"}),
    }
    headers = {"Authorization": f"Bearer {KEY}"}
    timings: dict[str, defaultdict[str, list[float]]] = {
        label: defaultdict(list) for label in runtimes
    }
    async with AsyncExitStack() as stack:
        clients = {}
        for label, runtime in runtimes.items():
            app = create_app(runtime=runtime, role="api")
            await stack.enter_async_context(LifespanManager(app))
            clients[label] = await stack.enter_async_context(
                AsyncClient(transport=ASGITransport(app=app), base_url="http://bench")
            )
        for name, (url, params) in queries.items():
            for run in range(runs + 3):
                for label, client in clients.items():
                    started = time.perf_counter()
                    response = await client.get(url, params=params, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200, response.text
                    if run >= 3:  # warm-up: connections, statement caches
                        timings[label][name].append(elapsed * 1000)
    return {
        label: {name: statistics.median(values) for name, values in by_query.items()}
        for label, by_query in timings.items()
    }


async def time_fold(runtime: Runtime, events: int, rng: random.Random) -> tuple[int, float]:
    """Raw events on recent messages of existing series, then the real rollup job."""
    messages = max(1, events // EVENTS_PER_MESSAGE)
    last_day = datetime.combine(FIRST_DAY + timedelta(days=DAYS - 1), datetime.min.time(), UTC)
    async with runtime.engine.begin() as connection:
        await connection.execute(
            insert(Customer),
            [
                {
                    "id": 1,
                    "shop": "bench",
                    "external_id": "c-1",
                    "email": "bench@example.org",
                    "source_updated_at": last_day,
                    "tags": [],
                    "attributes": {},
                    "marketing_consent": True,
                }
            ],
        )
        rows = []
        for index in range(messages):
            rule = rng.randrange(RULES)
            sent_at = last_day - timedelta(minutes=rng.randrange(7 * 24 * 60))
            rows.append(
                {
                    "id": index + 1,
                    "customer_id": 1,
                    "rule_id": f"rule-{rule:03d}",
                    "rule_version": "v1",
                    "template": f"template-{rule:03d}",
                    "variant": rng.choice(VARIANTS),
                    "kind": "marketing",
                    "dedupe_key": f"bench-{index}",
                    "status": "sent",
                    "send_at": sent_at,
                    "next_attempt_at": sent_at,
                    "sent_at": sent_at,
                    "attempts": 1,
                }
            )
        for part in chunks(rows):
            await connection.execute(insert(Message), part)
        raw = []
        for _ in range(events):
            message = rng.randrange(messages) + 1
            raw.append(
                {
                    "message_id": message,
                    "kind": rng.choice(("open", "open", "open", "click")),
                    "occurred_at": last_day,
                    "class": rng.choice(("human", "machine", "machine", "unknown")),
                    "reason": "browser",
                    "method": "GET",
                }
            )
        for part in chunks(raw):
            await connection.execute(insert(TrackingEvent), part)
    started = time.perf_counter()
    report = await fold_stats(runtime, settle=timedelta(0))
    elapsed = time.perf_counter() - started
    assert report.events == events, report
    return events, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--fold-events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    url = os.environ.get("AFTERSALE_BENCH_DATABASE_URL") or None
    dialect = "postgresql" if url and url.startswith("postgresql") else "sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        rules = RulesSource(Path(tmp))
        rules.reload()
        runtimes: dict[str, Runtime] = {}
        try:
            for label, events in SCALES.items():
                engine = bench_engine(url, Path(tmp), label)
                runtimes[label] = Runtime(
                    settings=Settings(
                        database_url=url or "sqlite+aiosqlite://",
                        api_keys=[KEY],
                        rules_dir=Path(tmp),
                        _env_file=None,  # type: ignore[call-arg]
                    ),
                    engine=engine,
                    session_factory=create_session_factory(engine),
                    rules=rules,
                    clock=FixedClock(),
                )
                await reset(engine, label)
                started = time.perf_counter()
                rows = await fill(engine, events, args.seed)
                print(
                    f"{engine.dialect.name}, {label} events: {rows:,} rollup rows, filled in "
                    f"{time.perf_counter() - started:.1f} s"
                )
            results = await time_api(runtimes, args.runs)
            for name in results["100k"]:
                print(
                    f"  {name:16} {results['10M'][name]:8.2f} ms at 10M, "
                    f"{results['100k'][name]:8.2f} ms at 100k (medians of {args.runs})"
                )
            folded, seconds = await time_fold(
                runtimes["10M"], args.fold_events, random.Random(args.seed)
            )
            print(
                f"fold: {folded:,} raw events into the 10M rollups in {seconds:.2f} s "
                f"({folded / seconds:,.0f} events/s)"
            )
        finally:
            for runtime in runtimes.values():
                await runtime.engine.dispose()
    ours, baseline = sum(results["10M"].values()), sum(results["100k"].values())
    print(
        f"stats ({dialect}): ours {ours:.1f} ms at 10M events, baseline {baseline:.1f} ms at "
        f"100k events, ratio {ours / baseline:.2f} (goal <= 2)"
    )


if __name__ == "__main__":
    asyncio.run(main())
