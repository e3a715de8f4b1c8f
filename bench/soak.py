"""A soak run: half the measured capacity for a long while; memory growth and errors.

Starts `aftersale serve --role api` and `serve --role worker` (PostgreSQL by default, from
AFTERSALE_BENCH_DATABASE_URL or `--database-url`; SQLite with `--database-url sqlite`) and
an SMTP sink. Capacity is measured first, end to end: a closed-loop burst of orders with
the worker sending beside it, timed until the last mail they planned is sent (unless
`--rate`). Then orders arrive open-loop at half that rate for `--minutes`, with opens and clicks on
the tracked mail already sent. Every process's RSS is sampled every `--sample-seconds`.

At the end: RSS after warm-up and at the end per process, its growth, non-2xx answers,
client errors, failed messages, the pending backlog and error lines in the servers' logs.
Exits 1 when any error occurred or a process grew by more than `--max-growth-mb`.

All traffic comes from 127.0.0.1, so the per-IP limit on public links is lifted
(AFTERSALE_PUBLIC_RATE_PER_MINUTE=0).

    python bench/soak.py [--minutes 30] [--rate ORDERS_PER_S] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from ingest import KEEPALIVE_EXPIRY, free_port, reset_postgres, wait_ready
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tracking import (
    CLICKERS,
    OPENERS,
    ReadMail,
    TrackedMail,
    order_body,
    signed,
    smtp_sink,
    start,
    tracking_folder,
)

from app.config import ROOT

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
MESSAGES_PER_ORDER = 2  # the thank-you and the tracked `links` mail
OPENS_PER_ORDER = 0.8
CLICKS_PER_ORDER = 0.3
MAX_IN_FLIGHT = 128
TOKENS_PER_DRAIN = 200


@dataclass
class Tally:
    """What the load generator saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    client_errors: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    hits: int = 0
    # How long after its time each request went out: the open loop waits (128 in flight at
    # most) rather than queueing without end, so a service that cannot keep up shows here.
    lags: list[float] = field(default_factory=list)
    late: int = 0  # over a second
    sent: int = 0
    overrun: float = 0.0  # seconds the last request went out after the run's end
    generator_cpu: float = 0.0  # share of one core the generator itself used

    @property
    def non_2xx(self) -> int:
        # A click answers 302; anything else outside 2xx is a failure.
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300 and code != 302)


@dataclass
class Mailbox:
    """The sink's mail, drained as it comes: counted, and the latest kept for their tokens."""

    sink: Any
    message_ids: Counter[str] = field(default_factory=Counter)
    tracked: list[TrackedMail] = field(default_factory=list)

    def drain(self) -> None:
        with self.sink._lock:  # the sink's thread appends under this lock
            received, self.sink.received = self.sink.received, []
        for mail in received:
            self.message_ids[str(mail.message["Message-ID"])] += 1
        # Reading a mail's HTML for its tokens is the costly part, and it runs on the load
        # generator's event loop: only the newest mail is read, enough to open and click.
        for mail in received[-TOKENS_PER_DRAIN:]:
            reader = ReadMail()
            reader.feed(mail.part("text/html"))
            if reader.pixel and reader.links:
                self.tracked.append(TrackedMail(reader.pixel, reader.links))
        del self.tracked[:-2000]  # recent mail is what gets opened

    @property
    def received(self) -> int:
        return sum(self.message_ids.values())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def post_order(client: httpx.AsyncClient, url: str, number: int, tally: Tally) -> None:
    body = order_body(number)
    try:
        response = await client.post(f"{url}/webhooks/orders", content=body, headers=signed(body))
    except httpx.HTTPError as exc:
        tally.client_errors[type(exc).__name__] += 1
        return
    tally.orders += 1
    tally.statuses[response.status_code] += 1


async def hit(
    client: httpx.AsyncClient, url: str, path: str, agent: str, ip: str, tally: Tally
) -> None:
    try:
        response = await client.get(
            url + path, headers={"User-Agent": agent, "X-Forwarded-For": ip}
        )
    except httpx.HTTPError as exc:
        tally.client_errors[type(exc).__name__] += 1
        return
    tally.hits += 1
    tally.statuses[response.status_code] += 1


async def pending(engine: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.models import Message

    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Message.status, func.count()).group_by(Message.status)
        )
        return {str(status): int(count) for status, count in rows}


async def measure_capacity(
    url: str, mailbox: Mailbox, engine: Any, *, burst_seconds: float, first: int
) -> tuple[float, float, int]:
    """Orders/s through the whole service, the burst's intake rate, and orders posted.

    A closed-loop burst of orders while the worker sends beside it, timed until the last
    mail the burst planned is sent: the API, the worker, the database and the sink share
    the machine's cores as they do in the soak, so half this rate is half the machine.
    (Intake and sending measured one at a time would each have the cores to themselves,
    and half of each together would load the machine fully.)
    """
    tally = Tally()
    numbers = iter(range(first, first + 10**9))
    deadline = time.monotonic() + burst_seconds
    async with httpx.AsyncClient(timeout=60) as client:

        async def loop() -> None:
            while time.monotonic() < deadline:
                await post_order(client, url, next(numbers), tally)

        began = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(16)))
        intake_rate = tally.orders / (time.monotonic() - began)
    if tally.non_2xx or tally.client_errors:
        raise RuntimeError(f"the capacity burst failed: {tally}")
    while True:
        mailbox.drain()
        counts = await pending(engine)
        if counts.get("scheduled", 0) + counts.get("sending", 0) == 0:
            break
        if time.monotonic() - began > 600:
            raise RuntimeError(f"the burst's mail did not drain in 10 minutes: {counts}")
        await asyncio.sleep(0.5)
    return tally.orders / (time.monotonic() - began), intake_rate, tally.orders


async def soak(
    url: str,
    processes: dict[str, subprocess.Popen[bytes]],
    mailbox: Mailbox,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    sample_every: float,
    first: int,
    rng: random.Random,
) -> tuple[Tally, dict[str, list[tuple[float, float]]]]:
    """Orders at `rate` a second and tracking hits beside them, whatever the answers do."""
    tally = Tally()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in processes}
    limits = httpx.Limits(
        max_connections=256, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_EXPIRY
    )
    tasks: set[asyncio.Task[None]] = set()
    per_order = 1 + OPENS_PER_ORDER + CLICKS_PER_ORDER
    # At most this many requests wait at once: past it the generator waits too, rather than
    # piling requests into the client's pool (whose bookkeeping grows with the queue, until
    # the client itself is what stalls).
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    cpu = time.process_time()
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        began = time.monotonic()
        end = began + seconds
        next_sample = began + warmup
        next_report = began + 300
        index = 0
        while True:
            due = began + index / (rate * per_order)
            now = time.monotonic()
            if due >= end:
                tally.overrun = max(0.0, now - end)
                break
            if now >= next_sample:
                mailbox.drain()
                for name, process in processes.items():
                    samples[name].append((now - began, rss_mb(process.pid)))
                next_sample += sample_every
            if now >= next_report:
                print(
                    f"  {(now - began) / 60:.0f} min: {tally.orders} orders, {tally.hits} hits, "
                    f"{tally.late} late, {mailbox.received} mails",
                    flush=True,
                )
                next_report += 300
            if due > now:
                await asyncio.sleep(due - now)
            await in_flight.acquire()
            lag = time.monotonic() - due
            tally.lags.append(lag)
            tally.late += int(lag > 1)
            tally.sent += 1
            index += 1
            draw = rng.random() * per_order
            if draw < 1 or not mailbox.tracked:
                task = asyncio.create_task(post_order(client, url, first + index, tally))
            else:
                mail = rng.choice(mailbox.tracked)
                is_open = draw < 1 + OPENS_PER_ORDER
                visitors = OPENERS if is_open else CLICKERS
                _, agent, network = rng.choices(visitors, [w for w, *_ in visitors])[0]
                address = network.format(rng.randrange(256), rng.randrange(1, 255))
                path = f"/o/{mail.pixel}" if is_open else f"/c/{rng.choice(mail.links)}"
                task = asyncio.create_task(hit(client, url, path, agent, address, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: in_flight.release())
        await asyncio.gather(*tasks)
        tally.generator_cpu = (time.process_time() - cpu) / (time.monotonic() - began)
        for name, process in processes.items():
            samples[name].append((time.monotonic() - began, rss_mb(process.pid)))
    return tally, samples


def log_errors(logs: list[Path]) -> list[str]:
    """Error lines of the servers' logs; for a traceback, its last line (the exception)."""
    found = []
    for log in logs:
        lines = log.read_text(errors="replace").splitlines()
        for index, line in enumerate(lines):
            if " ERROR " in line or " CRITICAL " in line:
                found.append(f"{log.stem}: {line[:200]}")
            elif line.startswith("Traceback"):
                end = next(
                    (at for at in range(index + 1, len(lines)) if not lines[at][:1].isspace()),
                    len(lines) - 1,
                )
                while end + 1 < len(lines) and not lines[end + 1][:4].isdigit():
                    end += 1  # chained exceptions: up to the next log line
                found.append(f"{log.stem}:   -> {lines[end][:200]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, help="orders a second (default: half capacity)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("AFTERSALE_BENCH_DATABASE_URL", DEFAULT_POSTGRES),
        help="PostgreSQL (emptied) or `sqlite` for a fresh SQLite file",
    )
    parser.add_argument("--burst-seconds", type=float, default=20)
    parser.add_argument("--warmup-seconds", type=float, default=60)
    parser.add_argument("--sample-seconds", type=float, default=30)
    parser.add_argument("--max-growth-mb", type=float, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bin_dir = Path(sys.executable).parent
    aftersale = str(bin_dir / "aftersale")
    sink = smtp_sink()
    mailbox = Mailbox(sink)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        templates, rules = tracking_folder(folder)
        shutil.copy(ROOT / "rules" / "thank-you.yaml", rules)
        database_url = (
            f"sqlite+aiosqlite:///{folder}/soak.db"
            if args.database_url == "sqlite"
            else args.database_url
        )
        port = free_port()
        env = {
            "AFTERSALE_DATABASE_URL": database_url,
            "AFTERSALE_RULES_DIR": str(rules),
            "AFTERSALE_TEMPLATES_DIR": str(templates),
            "AFTERSALE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "AFTERSALE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}?starttls=off&pool_size=8",
            "AFTERSALE_DISPATCH_INTERVAL": "1",
            "AFTERSALE_PUBLIC_RATE_PER_MINUTE": "0",  # all traffic comes from 127.0.0.1
        }
        if database_url.startswith("postgresql"):
            reset_postgres(database_url)
        subprocess.run(
            [aftersale, "db", "upgrade"], env={**os.environ, **env}, check=True, capture_output=True
        )
        logs = {"api": folder / "api.log", "worker": folder / "worker.log"}
        processes = {
            "api": start(
                [aftersale, "serve", "--role", "api", "--port", str(port)], env, logs["api"]
            ),
            "worker": start([aftersale, "serve", "--role", "worker"], env, logs["worker"]),
        }
        # No pool: each asyncio.run below has its own loop, and a pooled connection would
        # belong to a loop that is gone.
        engine = create_async_engine(database_url, poolclass=NullPool)
        url = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(f"{url}/healthz"))
            capacity, intake_rate, posted = asyncio.run(
                measure_capacity(url, mailbox, engine, burst_seconds=args.burst_seconds, first=0)
            )
            rate = args.rate or capacity / 2
            print(
                f"capacity: {capacity:.1f} orders/s end to end ({posted} orders in a "
                f"{args.burst_seconds:g} s closed-loop burst, 16 in flight, until the last of "
                f"their {MESSAGES_PER_ORDER * posted} mails was sent; intake alone ran at "
                f"{intake_rate:.1f} orders/s); soaking at {rate:.1f} orders/s"
                f"{' (--rate)' if args.rate else ' (half)'} with "
                f"{rate * OPENS_PER_ORDER:.1f} opens/s and {rate * CLICKS_PER_ORDER:.1f} clicks/s "
                f"for {args.minutes:g} min; public rate limit lifted "
                f"(AFTERSALE_PUBLIC_RATE_PER_MINUTE=0, all traffic from 127.0.0.1)",
                flush=True,
            )
            tally, samples = asyncio.run(
                soak(
                    url,
                    processes,
                    mailbox,
                    rate=rate,
                    seconds=args.minutes * 60,
                    warmup=min(args.warmup_seconds, args.minutes * 60 / 3),
                    sample_every=args.sample_seconds,
                    first=posted + 1,
                    rng=rng,
                )
            )
            # What is still due after a minute of quiet is a backlog the worker cannot clear.
            settle = time.monotonic() + 60
            while time.monotonic() < settle:
                counts = asyncio.run(pending(engine))
                if counts.get("scheduled", 0) + counts.get("sending", 0) == 0:
                    break
                time.sleep(1)
            mailbox.drain()
            counts = asyncio.run(pending(engine))
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
            asyncio.run(engine.dispose())
            sink.stop()
        errors_in_logs = log_errors(list(logs.values()))
    kind = database_url.split("+")[0].split(":")[0]
    print(f"soak ({kind}, {args.minutes:g} min at {rate:.1f} orders/s):")
    too_much = []
    for name, series in samples.items():
        start_mb, end_mb = series[0][1], series[-1][1]
        growth = end_mb - start_mb
        print(
            f"  {name}: RSS {start_mb:.1f} MB after warm-up -> {end_mb:.1f} MB at the end, "
            f"growth {growth:+.1f} MB ({growth / start_mb:+.1%}); samples (s: MB) "
            + ", ".join(f"{at:.0f}: {mb:.0f}" for at, mb in series)
        )
        if growth > args.max_growth_mb:
            too_much.append(name)
    duplicates = sum(n - 1 for n in mailbox.message_ids.values() if n > 1)
    backlog = counts.get("scheduled", 0) + counts.get("sending", 0)
    lags = sorted(tally.lags) or [0.0]
    print(
        f"  schedule: the last request went out {tally.overrun:.1f} s after the run's end; "
        f"lag behind schedule p50 {lags[len(lags) // 2]:.2f} s, "
        f"p99 {lags[int(len(lags) * 0.99)]:.2f} s, max {lags[-1]:.2f} s; "
        f"the load generator used {tally.generator_cpu:.0%} of a core "
        f"(near 100 %: the lag is the generator's own)"
    )
    print(
        f"  requests: {tally.sent} sent, {tally.late} over a second late "
        f"({tally.late / max(tally.sent, 1):.1%}); "
        f"{tally.orders} orders, {tally.hits} opens and clicks; "
        f"non-2xx {tally.non_2xx} {dict(tally.statuses)}; client errors "
        f"{sum(tally.client_errors.values())} {dict(tally.client_errors)}"
    )
    print(
        f"  messages: {counts}; failed {counts.get('failed', 0)}, pending backlog {backlog}; "
        f"mails received {mailbox.received} ({duplicates} duplicates); "
        f"error lines in logs {len(errors_in_logs)}"
    )
    for line in errors_in_logs[:10]:
        print(f"    {line}")
    problems = []
    if tally.non_2xx or tally.client_errors:
        problems.append("requests failed")
    if counts.get("failed", 0) or duplicates or errors_in_logs:
        problems.append("messages failed, repeated or errors logged")
    if tally.overrun > args.minutes * 60 / 20:
        problems.append(f"the schedule ran {tally.overrun:.0f} s over: the rate was not held")
    if backlog:
        problems.append(f"{backlog} messages still pending a minute after the load stopped")
    if too_much:
        problems.append(f"{', '.join(too_much)} grew by more than {args.max_growth_mb:g} MB")
    print(f"soak: {'FAILED: ' + '; '.join(problems) if problems else 'passed'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
