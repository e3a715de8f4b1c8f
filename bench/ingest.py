"""Order webhooks through a real uvicorn, against a bare endpoint measured in the same run.

Ours: `aftersale serve --role api` with the shipped rules; each request is a realistic order
(3 items, a customer, a signature), each with its own event, order and customer (about half
repeat an earlier customer). Measured in both intake modes (`--modes`):

- `queued` (AFTERSALE_INTAKE_MODE=queued): the request verifies, validates and stores the
  delivery queued; the worker's job then upserts, stores and plans it. That job is run
  afterwards in a process of its own over everything queued, and its CPU per order printed
  (`ingest apply`), with the whole cost of an order wherever it runs (`ingest-end-to-end`).
- `inline` (the default setting): all of it in the request's transaction.

Baseline: bench/bare_app.py, which stores the same body in one row. Both are driven by wrk
(bench/wrkload.py: one thread, its own process) at the same connections, for the same time,
on the same database; each saturated rate comes with each server's CPU time per request
(its process tree, from /proc) and, on PostgreSQL, its backends' CPU time, which a busy
machine disturbs far less than the rates.

Each saturated rate is the faster of two passes (PASSES): this machine's speed drifts by
about a fifth from minute to minute. Then a run paced at 80 % of each mode's saturation rate
gives the latency a shop sees under steady load (Shopify gives up after 5 s). The baseline is
paced at 80 % of its own too: a server that idles between requests spends more CPU on each
(on this VM up to 1.5 times as much, wakeups and cold caches), and the baseline's p99 there
shows what the machine allows at all.

    python bench/ingest.py [--seconds 10] [--connections 64] [--database-url URL]
                           [--modes queued,inline] [--quick] [--profile FILE]

`--profile FILE` runs our server under cProfile and prints where its time went.

Default database: a fresh SQLite file. For PostgreSQL pass e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/bench (the database is emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import pstats
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import wrkload
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import DEV_WEBHOOK_SECRET, ROOT
from app.intake.signature import sign

# Idle client connections are dropped before uvicorn's 5 s keep-alive timeout (the bare
# app's; `aftersale serve` keeps them 75 s) closes them: httpx's default (also 5 s) races
# it, and a request sent on a connection the server is just closing fails with a ReadError.
# When the client is the bottleneck, some pooled connections sit idle that long.
KEEPALIVE_EXPIRY = 2.0

ITEMS = [
    ("DIAPER-M-60", "Diapers M, 60 pcs", "baby/diapers", "24.90"),
    ("FOOD-APPLE-6", "Apple puree, 6 jars", "baby/food", "7.50"),
    ("CART-BK-12", "Black cartridge", "office/cartridges", "39.00"),
    ("BEANS-ETH-250", "Ethiopia beans 250 g", "coffee/beans", "12.90"),
    ("BED-OAK-1", "Oak bed", "kids/furniture", "349.00"),
    ("SOCKS-3", "Socks, 3 pairs", "clothes", "9.90"),
]


def order_body(number: int, rng: random.Random) -> bytes:
    customer = rng.randrange(max(number // 2, 1))  # about half are repeat customers
    items = rng.sample(ITEMS, 3)
    total = sum(float(price) for *_, price in items)
    return json.dumps(
        {
            "id": f"bench-{number}",
            "type": "order.created",
            "occurred_at": "2026-11-20T10:00:00Z",
            "order": {
                "id": str(900000000000000000 + number),
                "created_at": "2026-11-20T09:59:00Z",
                "currency": "EUR",
                "total": f"{total:.2f}",
                "items": [
                    {"sku": sku, "name": name, "category": category, "unit_price": price}
                    for sku, name, category, price in items
                ],
            },
            "customer": {
                "id": f"c-{customer}",
                "email": f"customer{customer}@example.org",
                "first_name": "Anna",
                "locale": rng.choice(["en", "ru"]),
                "time_zone": "Europe/Berlin",
                "marketing_consent": True,
            },
        }
    ).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def closed_loop(
    url: str,
    bodies: list[bytes],
    *,
    concurrency: int,
    signed: bool,
    failures: list[str] | None = None,
) -> tuple[float, list[float]]:
    """Requests per second at `concurrency` requests in flight, and each latency (httpx).

    bench/peer.py's driver still; httpx spends as much CPU per request as a bare server, so
    the figures it gives are bounded by the client on a small machine (docs/performance.md).

    An answer other than 200 or a dropped connection ends the run, unless `failures` is
    given: then it is listed there (bench/peer.py, whose peer fails some requests under
    load) and the run goes on.
    """
    queue = list(reversed(bodies))
    latencies: list[float] = []
    limits = httpx.Limits(
        max_connections=concurrency,
        max_keepalive_connections=concurrency,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers(body, signed))
                except httpx.TransportError as exc:
                    if failures is None:
                        raise
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    if failures is None:
                        raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                    failures.append(f"{response.status_code}: {response.text[:200]}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(bodies) / elapsed, latencies


def headers(body: bytes, signed: bool) -> dict[str, str]:
    if not signed:
        return {"Content-Type": "application/json"}
    stamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "X-Aftersale-Timestamp": str(stamp),
        "X-Aftersale-Signature": sign(DEV_WEBHOOK_SECRET, stamp, body),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may hold spaces): utime and stime are the
        # 12th and 13th, in clock ticks.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_command(port: int) -> list[str]:
    """bench/bare_app.py in uvicorn: the baseline of the ingest, peer and tracking benchmarks."""
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    app_dir = str(ROOT / "bench")
    return [
        uvicorn,
        "--app-dir",
        app_dir,
        "bare_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


# CPU per request is counted over what was stored, once the requests still in flight when
# wrk stopped counting have been answered: they cost CPU that their answers do not show.
DRAIN_SECONDS = 2.0
# Saturation runs per server; the faster counts (the machine's own jitter is ±20 %).
PASSES = 2


def count_rows(database_url: str, table: str) -> int:
    async def count() -> int:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return int(await connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def signed_request(body: bytes, host: str) -> bytes:
    return wrkload.http_request("POST", "/webhooks/orders", host, headers(body, True), body)


def bare_request(body: bytes, host: str) -> bytes:
    return wrkload.http_request("POST", "/ingest", host, headers(body, False), body)


@dataclass
class Measured:
    """One intake mode's runs: saturated, paced at 80 %, and the CPU per stored order."""

    mode: str
    saturated: wrkload.WrkResult
    steady: wrkload.WrkResult
    steady_rate: float
    server_ms: float
    database_ms: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="each saturation run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database-url", default=os.environ.get("AFTERSALE_BENCH_DATABASE_URL"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 s runs: does it work?")
    parser.add_argument(
        "--modes",
        default="queued,inline",
        help="AFTERSALE_INTAKE_MODE values to measure, comma-separated",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run our server under cProfile, write its stats here"
    )
    parser.add_argument("--apply-queued", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.apply_queued:
        apply_queued_here()
        return
    seconds = 3.0 if args.quick else args.seconds
    steady_seconds = 5.0 if args.quick else 15.0
    rng = random.Random(args.seed)
    bin_dir = Path(sys.executable).parent
    numbers = itertools.count()

    def bodies(count: int) -> list[bytes]:
        return [order_body(next(numbers), rng) for _ in range(count)]

    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        env = {
            "AFTERSALE_DATABASE_URL": database_url,
            "AFTERSALE_RULES_DIR": str(ROOT / "rules"),
        }
        postgres = database_url.startswith("postgresql")
        if postgres:
            reset_postgres(database_url)
        subprocess.run(
            [bin_dir / "aftersale", "db", "upgrade"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        database = make_url(database_url).database if postgres else None

        def load(url: str, requests: list[bytes], **options: Any) -> wrkload.WrkResult:
            return wrkload.run(url, requests, connections=args.connections, **options)

        def saturated(
            url: str,
            request: Callable[[bytes], bytes],
            *,
            count: int,
            cpu: wrkload.CpuMeter,
            table: str,
            distinct: bool,
        ) -> tuple[wrkload.WrkResult, float, float]:
            """The fastest of PASSES saturated runs, with the server's and its database
            backends' CPU ms per row stored, counted once the requests in flight are done."""
            passes = []
            for _ in range(PASSES):
                batch = [request(body) for body in bodies(count)]
                before, rows = cpu.snapshot(), count_rows(database_url, table)
                run = load(url, batch, seconds=seconds, distinct=distinct)
                time.sleep(DRAIN_SECONDS)
                server, db = cpu.since(before)
                stored = count_rows(database_url, table) - rows
                passes.append((run, server / stored * 1000, db / stored * 1000))
            return max(passes, key=lambda found: found[0].rate)

        bare_port = free_port()
        bare = start(bare_command(bare_port), {"BARE_DATABASE_URL": database_url})
        bare_cpu = wrkload.CpuMeter(bare.pid, database)
        try:
            asyncio.run(wait_ready(f"http://127.0.0.1:{bare_port}/docs"))
            bare_url, bare_host = f"http://127.0.0.1:{bare_port}", f"127.0.0.1:{bare_port}"
            warm = bodies(2000)
            load(bare_url, [bare_request(b, bare_host) for b in warm], seconds=2, distinct=False)
            bare_run, bare_ms, bare_db_ms = saturated(
                bare_url,
                functools.partial(bare_request, host=bare_host),
                count=5000,
                cpu=bare_cpu,
                table="bare_raw",
                distinct=False,
            )
            # The baseline paced as ours is: what this machine allows at 80 % of a one-row
            # insert's saturation is the bound for ours at 80 % of its own.
            bare_steady = load(
                bare_url,
                [bare_request(b, bare_host) for b in bodies(5000)],
                seconds=steady_seconds,
                rate=bare_run.rate * 0.8,
                distinct=False,
            )
        finally:
            bare.terminate()
            bare.wait(timeout=30)

        measured: list[Measured] = []
        for mode in args.modes.split(","):
            port = free_port()
            serve = [str(bin_dir / "aftersale"), "serve", "--role", "api", "--port", str(port)]
            if args.profile:  # cProfile writes when uvicorn returns after SIGTERM
                serve = [sys.executable, "-m", "cProfile", "-o", args.profile, *serve]
            ours = start(serve, {**env, "AFTERSALE_INTAKE_MODE": mode})
            ours_cpu = wrkload.CpuMeter(ours.pid, database)
            try:
                asyncio.run(wait_ready(f"http://127.0.0.1:{port}/healthz"))
                url, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
                warm = bodies(2000)
                load(url, [signed_request(b, host) for b in warm], seconds=2, distinct=False)
                # A distinct order per request, as many as the baseline's rate could send
                # (at least 1,000 a second: on a busy machine the baseline's run can be slow).
                budget = int(max(bare_run.rate, 1000) * seconds * 1.5) + 500
                run, server_ms, database_ms = saturated(
                    url,
                    functools.partial(signed_request, host=host),
                    count=budget,
                    cpu=ours_cpu,
                    table="webhook_deliveries",
                    distinct=True,
                )
                steady_rate = run.rate * 0.8
                steady = load(
                    url,
                    [
                        signed_request(b, host)
                        for b in bodies(int(steady_rate * steady_seconds * 1.5) + 500)
                    ],
                    seconds=steady_seconds,
                    rate=steady_rate,
                )
            finally:
                # uvicorn re-raises SIGTERM after its shutdown, which would kill cProfile
                # before it writes; SIGINT ends in a KeyboardInterrupt that `serve` catches.
                ours.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
                ours.wait(timeout=30)
            measured.append(Measured(mode, run, steady, steady_rate, server_ms, database_ms))
            if args.profile:
                pstats.Stats(args.profile).sort_stats("tottime").print_stats(40)
        applied = apply_queue(env, database) if "queued" in args.modes.split(",") else None

    kind = "PostgreSQL" if postgres else "SQLite"
    for result in measured:
        name = "ingest" if result.mode == "queued" else f"ingest-{result.mode}"
        run, steady = result.saturated, result.steady
        print(
            f"{name} ({kind}, wrk, AFTERSALE_INTAKE_MODE={result.mode}): ours {run.rate:.0f} "
            f"orders/s, baseline {bare_run.rate:.0f} req/s, ratio {run.rate / bare_run.rate:.2f} "
            f"(goal ≥ 0.5, then 0.7); p99 at 80 % {steady.p99_ms:.0f} ms (goal ≤ 250 ms; "
            f"the baseline's at 80 % of its own: {bare_steady.p99_ms:.0f} ms); server CPU ours "
            f"{result.server_ms:.2f} ms/order, bare {bare_ms:.2f} ms/request"
        )
        print(
            f"{name} details: wrk 1 thread, {args.connections} connections, {seconds:.0f} s "
            f"each, the faster of {PASSES} passes; saturated latency ours {run.latency()}, "
            f"bare {bare_run.latency()}; at 80 % ({result.steady_rate:.0f} orders/s paced, got "
            f"{steady.rate:.0f}/s for {steady.seconds:.0f} s): {steady.latency()}, p90 "
            f"{steady.p90_ms:.0f} ms, max {steady.max_ms:.0f} ms; bare at 80 % "
            f"({bare_steady.rate:.0f} req/s): {bare_steady.latency()}, max "
            f"{bare_steady.max_ms:.0f} ms"
        )
        if postgres:
            print(
                f"{name} PostgreSQL backend CPU: ours {result.database_ms:.2f} ms/order, "
                f"bare {bare_db_ms:.2f} ms/request"
            )
    if applied is not None:
        # The work the request no longer does is done here: its cost is part of an order's.
        print(
            f"ingest apply (the worker's job, queued mode): {applied['applied']} orders in "
            f"{applied['seconds']:.1f} s = {applied['applied'] / applied['seconds']:.0f} "
            f"orders/s, worker CPU {applied['cpu'] / applied['applied'] * 1000:.2f} ms/order"
            + (
                f", PostgreSQL backend {applied['database'] / applied['applied'] * 1000:.2f} "
                "ms/order"
                if postgres
                else ""
            )
        )
    queued = next((result for result in measured if result.mode == "queued"), None)
    if applied is not None and queued is not None:
        # The whole of an order's cost, wherever it runs, against the bare insert's.
        per_order = (
            queued.server_ms
            + queued.database_ms
            + (applied["cpu"] + applied["database"]) / applied["applied"] * 1000
        )
        bare_total = bare_ms + (bare_db_ms if postgres else 0.0)
        print(
            f"ingest-end-to-end ({kind}, CPU per order: request + worker"
            + (" + PostgreSQL" if postgres else "")
            + f"): ours {per_order:.2f} ms, baseline {bare_total:.2f} ms, ratio "
            f"{bare_total / per_order:.2f} (the capacity of one machine doing both)"
        )
    problems = [
        f"{result.mode} {name}: {run.non_2xx} non-2xx answers, {run.socket_errors} socket errors"
        for result in measured
        for name, run in (("saturated", result.saturated), ("at 80 %", result.steady))
        if run.non_2xx or run.socket_errors
    ]
    for run in (bare_run, bare_steady):
        if run.non_2xx or run.socket_errors:
            problems.append(f"bare: {run.non_2xx} non-2xx, {run.socket_errors} errors")
    if applied is not None and applied["left"]:
        problems.append(f"{applied['left']} deliveries still queued after the apply")
    for line in problems:
        print(f"ingest PROBLEM {line}")
    if problems:
        sys.exit(1)


def apply_queue(env: dict[str, str], database: str | None) -> dict[str, Any]:
    """Run the worker's queue job in a process of its own until the queue is empty."""
    command = [sys.executable, __file__, "--apply-queued"]
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    meter = wrkload.CpuMeter(process.pid, database)
    before = meter.snapshot()
    out, _ = process.communicate(timeout=1800)
    _, db = meter.since(before)
    if process.returncode:
        raise RuntimeError("applying the queue failed")
    return {**json.loads(out.decode().strip().splitlines()[-1]), "database": db}


def apply_queued_here() -> None:
    """The worker's `apply_queued` job on the settings from the environment; prints what it
    applied, its wall time and this process's CPU time for it (start-up excluded)."""
    from app.config import Settings
    from app.intake.queue import apply_queued
    from app.ops.repository import queue_depth
    from app.runtime import Runtime

    async def run() -> dict[str, Any]:
        runtime = Runtime.create(Settings(), templates=None)
        async with runtime.session_factory() as session:
            await session.execute(text("SELECT 1"))  # connect before the clock starts
        began, cpu = time.perf_counter(), time.process_time()
        report = await apply_queued(runtime)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        async with runtime.session_factory() as session:
            left, _ = await queue_depth(session)
        await runtime.engine.dispose()
        return {"applied": report.applied, "seconds": seconds, "cpu": cpu, "left": left}

    print(json.dumps(asyncio.run(run())))


def reset_postgres(database_url: str) -> None:
    import asyncpg

    async def reset() -> None:
        plain = database_url.replace("postgresql+asyncpg", "postgresql")
        connection = await asyncpg.connect(plain)
        try:
            await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await connection.close()

    asyncio.run(reset())


if __name__ == "__main__":
    main()
