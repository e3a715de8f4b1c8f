"""Order webhooks through a real uvicorn, against a bare endpoint measured in the same run.

Ours: `aftersale serve --role api` with the shipped rules; each request is a realistic order
(3 items, a customer, a signature) that is verified, validated, upserted and planned in one
transaction. Baseline: bench/bare_app.py, which stores the same body in one row. Both are
driven by the same client at the same concurrency, on the same database.

Then an open-loop run at 80 % of our measured saturation rate gives the latency a shop sees
under steady load (Shopify gives up after 5 s).

    python bench/ingest.py [--requests 3000] [--concurrency 64] [--database-url URL] [--cpu]

`--cpu` also reports each server's CPU time per request (Linux /proc), which a busy machine
disturbs far less than the rates: the client, both servers and the database share the cores.

Default database: a fresh SQLite file. For PostgreSQL pass e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/bench (the database is emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

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
    """Requests per second at `concurrency` requests in flight, and each latency.

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


async def open_loop(url: str, bodies: list[bytes], *, rate: float) -> list[float]:
    """Send at a fixed rate, whatever the answers do: latencies as a shop would see them."""
    latencies: list[float] = []
    limits = httpx.Limits(
        max_connections=512, max_keepalive_connections=128, keepalive_expiry=KEEPALIVE_EXPIRY
    )
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers(body, True))
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()

        tasks = []
        began = time.perf_counter()
        for index, body in enumerate(bodies):
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return latencies


def headers(body: bytes, signed: bool) -> dict[str, str]:
    if not signed:
        return {"Content-Type": "application/json"}
    stamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "X-Aftersale-Timestamp": str(stamp),
        "X-Aftersale-Signature": sign(DEV_WEBHOOK_SECRET, stamp, body),
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default=os.environ.get("AFTERSALE_BENCH_DATABASE_URL"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cpu", action="store_true", help="report server CPU ms per request")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        env = {
            "AFTERSALE_DATABASE_URL": database_url,
            "AFTERSALE_RULES_DIR": str(ROOT / "rules"),
        }
        if database_url.startswith("postgresql"):
            reset_postgres(database_url)
        subprocess.run(
            [bin_dir / "aftersale", "db", "upgrade"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        ours_port, bare_port = free_port(), free_port()
        ours = start(
            [str(bin_dir / "aftersale"), "serve", "--role", "api", "--port", str(ours_port)], env
        )
        bare = start(
            bare_command(bare_port),
            {"BARE_DATABASE_URL": database_url},
        )
        try:
            asyncio.run(wait_ready(f"http://127.0.0.1:{ours_port}/healthz"))
            asyncio.run(wait_ready(f"http://127.0.0.1:{bare_port}/docs"))
            bodies = [order_body(n, rng) for n in range(args.requests)]
            warm = [order_body(n, rng) for n in range(args.requests, args.requests + 200)]
            ours_url = f"http://127.0.0.1:{ours_port}/webhooks/orders"
            bare_url = f"http://127.0.0.1:{bare_port}/ingest"
            asyncio.run(closed_loop(ours_url, warm, concurrency=8, signed=True))
            asyncio.run(closed_loop(bare_url, warm, concurrency=8, signed=False))
            bare_cpu = cpu_seconds(bare.pid) if args.cpu else 0.0
            bare_rate, _ = asyncio.run(
                closed_loop(bare_url, bodies, concurrency=args.concurrency, signed=False)
            )
            bare_cpu = cpu_seconds(bare.pid) - bare_cpu if args.cpu else 0.0
            ours_cpu = cpu_seconds(ours.pid) if args.cpu else 0.0
            ours_rate, ours_latencies = asyncio.run(
                closed_loop(ours_url, bodies, concurrency=args.concurrency, signed=True)
            )
            ours_cpu = cpu_seconds(ours.pid) - ours_cpu if args.cpu else 0.0
            steady = [order_body(n, rng) for n in range(10**6, 10**6 + int(ours_rate * 0.8 * 10))]
            steady_latencies = asyncio.run(open_loop(ours_url, steady, rate=ours_rate * 0.8))
        finally:
            for process in (ours, bare):
                process.terminate()
                process.wait(timeout=30)
    kind = database_url.split("+")[0].split(":")[0]
    print(
        f"ingest ({kind}, {args.requests} orders, concurrency {args.concurrency}): "
        f"ours {ours_rate:.0f} req/s, baseline {bare_rate:.0f} req/s, "
        f"ratio {ours_rate / bare_rate:.2f} (goal ≥ 0.7)"
    )
    if args.cpu:
        ours_ms, bare_ms = ours_cpu / args.requests * 1000, bare_cpu / args.requests * 1000
        print(
            f"ingest server CPU per request: ours {ours_ms:.2f} ms, baseline {bare_ms:.2f} ms, "
            f"ratio {bare_ms / ours_ms:.2f}"
        )
    print(
        f"ingest latency at saturation: p50 {statistics.median(ours_latencies) * 1000:.0f} ms, "
        f"p99 {percentile(ours_latencies, 0.99) * 1000:.0f} ms"
    )
    print(
        f"ingest latency at 80% of saturation ({ours_rate * 0.8:.0f} req/s for 10 s): "
        f"p50 {statistics.median(steady_latencies) * 1000:.0f} ms, "
        f"p99 {percentile(steady_latencies, 0.99) * 1000:.0f} ms (goal ≤ 500 ms)"
    )


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
