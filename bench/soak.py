"""A soak run: half the measured capacity for a long while; memory growth and errors.

Starts `aftersale serve --role api` and `serve --role worker` (PostgreSQL by default, from
AFTERSALE_BENCH_DATABASE_URL or `--database-url`; SQLite with `--database-url sqlite`) and
an SMTP sink. All HTTP load comes from wrk in its own process (bench/wrkload.py), from files
of pre-built requests: signed orders each with their own event, order and customer, and
opens and clicks with the tokens of mail already received.

Capacity is measured first, end to end: a closed-loop wrk burst of orders (16 connections)
with the worker sending beside it, timed until the last mail they planned is sent (unless
`--rate`), with the API's, the worker's and PostgreSQL's CPU per order beside the rate.
Then orders arrive at half that rate for `--minutes`, with opens and clicks on the tracked
mail already received, in consecutive paced wrk runs of `--chunk-seconds` each: every chunk
is built just before it runs (signatures stay fresh; opens and clicks use the tokens of the
mail received so far) and interleaves its orders, opens and clicks at random. A thread reads
arriving mail for its tokens and samples every process's RSS every `--sample-seconds`.

At the end: RSS after warm-up and at the end per process, its growth, the rate held, non-2xx
answers, socket errors, failed messages, the pending backlog and error lines in the servers'
logs, with the CPU per request of each server and of the load generator (wrk, and this
process building the requests and receiving the mail) as a share of a core: the generator
is shown not to be the bottleneck. Exits 1 when any error occurred, the rate was not held
(under 95 % of the scheduled requests answered) or a process grew by more than
`--max-growth-mb`. The opens and clicks come on top of half the orders' capacity, and the
machine may be shared: the load average at the start and end is printed beside the figures.

All traffic comes from 127.0.0.1, so the per-IP limit on public links is lifted
(AFTERSALE_PUBLIC_RATE_PER_MINUTE=0).

    python bench/soak.py [--minutes 30] [--rate ORDERS_PER_S] [--database-url URL]
                         [--chunk-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wrkload
from ingest import free_port, reset_postgres, signed_request, wait_ready
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tracking import (
    CLICKERS,
    OPENERS,
    ReadMail,
    TrackedMail,
    order_body,
    smtp_sink,
    start,
    tracking_folder,
)

from app.config import ROOT

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
MESSAGES_PER_ORDER = 2  # the thank-you and the tracked `links` mail
OPENS_PER_ORDER = 0.8
CLICKS_PER_ORDER = 0.3
BURST_CONNECTIONS = 16
# Distinct orders built for the burst: this many a second, far above what intake reaches
# (about 150/s on PostgreSQL on two cores); wrk stops with an error if they run out.
BURST_CEILING = 1000
SOAK_CONNECTIONS = 64  # open loop: a slow answer holds one connection, not the schedule
TOKENS_PER_DRAIN = 10  # every second: the 2,000 kept turn over in minutes
MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children: the wrk runs, one after another."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Mailbox:
    """The sink's mail, drained as it comes: counted, and the latest kept for their tokens."""

    sink: Any
    message_ids: Counter[str] = field(default_factory=Counter)
    tracked: list[TrackedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def drain(self) -> None:
        with self.sink._lock:  # the sink's thread appends under this lock
            received, self.sink.received = self.sink.received, []
        for mail in received:
            # The header from the raw bytes: parsing every whole message would cost this
            # process more than the worker spends sending it.
            found_id = MESSAGE_ID.search(mail.raw.split(b"\r\n\r\n", 1)[0])
            self.message_ids[found_id.group(1).decode() if found_id else "?"] += 1
        # Reading a mail's HTML for its tokens is costlier still: only the newest few are
        # read, enough to open and click.
        found = []
        for mail in received[-TOKENS_PER_DRAIN:]:
            reader = ReadMail()
            reader.feed(mail.part("text/html"))
            if reader.pixel and reader.links:
                found.append(TrackedMail(reader.pixel, reader.links))
        with self.lock:
            self.tracked = (self.tracked + found)[-2000:]  # recent mail is what gets opened

    def recent(self) -> list[TrackedMail]:
        with self.lock:
            return list(self.tracked)

    @property
    def received(self) -> int:
        return sum(self.message_ids.values())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Watcher(threading.Thread):
    """Reads arriving mail every second and, from `warmup` on, samples each process's RSS."""

    def __init__(
        self,
        mailbox: Mailbox,
        processes: dict[str, subprocess.Popen[bytes]],
        *,
        warmup: float,
        every: float,
    ) -> None:
        super().__init__(daemon=True)
        self.mailbox, self.processes, self.warmup, self.every = mailbox, processes, warmup, every
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in processes}
        self.began = 0.0  # when the soak starts: start()
        self.halt = threading.Event()
        self.cpu = 0.0  # this thread's own CPU seconds: reading the mail, sampling RSS

    def sample(self) -> None:
        at = time.monotonic() - self.began
        for name, process in self.processes.items():
            self.samples[name].append((at, rss_mb(process.pid)))

    def run(self) -> None:
        self.began = time.monotonic()
        next_sample = self.began + self.warmup
        while not self.halt.wait(1.0):
            self.mailbox.drain()
            if time.monotonic() >= next_sample:
                self.sample()
                next_sample += self.every
            self.cpu = time.thread_time()

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.sample()


def order_requests(numbers: Iterator[int], host: str, count: int) -> list[bytes]:
    return [signed_request(order_body(next(numbers)), host) for _ in range(count)]


def hit_request(mails: list[TrackedMail], host: str, rng: random.Random, *, is_open: bool) -> bytes:
    mail = rng.choice(mails)
    visitors = OPENERS if is_open else CLICKERS
    _, agent, network = rng.choices(visitors, [weight for weight, *_ in visitors])[0]
    address = network.format(rng.randrange(256), rng.randrange(1, 255))
    path = f"/o/{mail.pixel}" if is_open else f"/c/{rng.choice(mail.links)}"
    return wrkload.http_request(
        "GET", path, host, {"User-Agent": agent, "X-Forwarded-For": address}
    )


def chunk_requests(
    numbers: Iterator[int],
    mails: list[TrackedMail],
    host: str,
    count: int,
    rng: random.Random,
) -> tuple[list[bytes], list[bool]]:
    """`count` requests, orders, opens and clicks in the soak's proportions at random, and
    which of them are orders. Without received mail yet, only orders."""
    per_order = 1 + OPENS_PER_ORDER + CLICKS_PER_ORDER
    requests, is_order = [], []
    for _ in range(count):
        draw = rng.random() * per_order
        if draw < 1 or not mails:
            requests.append(signed_request(order_body(next(numbers)), host))
            is_order.append(True)
        else:
            is_open = draw < 1 + OPENS_PER_ORDER
            requests.append(hit_request(mails, host, rng, is_open=is_open))
            is_order.append(False)
    return requests, is_order


async def pending(engine: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.models import Message

    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Message.status, func.count()).group_by(Message.status)
        )
        return {str(status): int(count) for status, count in rows}


async def orders_stored(engine: Any) -> int:
    from sqlalchemy import func, select

    from app.models import Order

    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(Order)) or 0)


@dataclass(frozen=True)
class Capacity:
    rate: float  # orders/s end to end: until the last of the burst's mail was sent
    intake_rate: float  # orders/s answered during the burst
    orders: int
    seconds: float
    p99_ms: float
    api_ms: float  # CPU per order, burst start to drained
    worker_ms: float
    database_ms: float
    wrk_ms: float


def measure_capacity(
    url: str,
    engine: Any,
    meters: dict[str, wrkload.CpuMeter],
    numbers: Iterator[int],
    *,
    burst_seconds: float,
) -> Capacity:
    """Orders/s through the whole service, with each side's CPU per order.

    A closed-loop wrk burst of orders while the worker sends beside it, timed until the last
    mail the burst planned is sent: the API, the worker, the database and the sink share
    the machine's cores as they do in the soak, so half this rate is half the machine.
    (Intake and sending measured one at a time would each have the cores to themselves,
    and half of each together would load the machine fully.)
    """
    host = url.removeprefix("http://")
    requests = order_requests(numbers, host, math.ceil(BURST_CEILING * burst_seconds))
    before = {name: meter.snapshot() for name, meter in meters.items()}
    wrk_before = children_cpu()
    began = time.monotonic()
    result = wrkload.run(
        url, requests, connections=BURST_CONNECTIONS, seconds=burst_seconds, distinct=True
    )
    wrk_cpu = children_cpu() - wrk_before
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"the capacity burst failed: {result}")
    while True:
        counts = asyncio.run(pending(engine))
        if counts.get("scheduled", 0) + counts.get("sending", 0) == 0:
            break
        if time.monotonic() - began > 600:
            raise RuntimeError(f"the burst's mail did not drain in 10 minutes: {counts}")
        time.sleep(0.5)
    seconds = time.monotonic() - began
    api, database = meters["api"].since(before["api"])
    worker, _ = meters["worker"].since(before["worker"])
    # Requests still in flight when wrk stopped counting were stored and sent too: the
    # database knows how many orders there are.
    orders = asyncio.run(orders_stored(engine))
    return Capacity(
        rate=orders / seconds,
        intake_rate=result.rate,
        orders=orders,
        seconds=seconds,
        p99_ms=result.p99_ms,
        api_ms=1000 * api / orders,
        worker_ms=1000 * worker / orders,
        database_ms=1000 * database / orders,
        wrk_ms=1000 * wrk_cpu / result.requests,
    )


@dataclass
class Tally:
    """What wrk and the harness saw over the soak's chunks."""

    chunks: int = 0
    requests: int = 0  # answered
    orders: int = 0  # answered orders (one wrk thread sends its file in order)
    hits: int = 0
    scheduled: float = 0.0  # requests the schedule asked for over wrk's running time
    non_2xx: int = 0  # status > 399 (a click answers 302)
    socket_errors: int = 0
    wrk_seconds: float = 0.0
    wall_seconds: float = 0.0
    worst_p99_ms: float = 0.0
    wrk_cpu: float = 0.0
    build_cpu: float = 0.0  # this process building the chunks' requests
    process_cpu: float = 0.0  # this process in all: building, the SMTP sink, reading mail
    api_cpu: float = 0.0
    worker_cpu: float = 0.0
    database_cpu: float = 0.0


def soak(
    url: str,
    mailbox: Mailbox,
    meters: dict[str, wrkload.CpuMeter],
    numbers: Iterator[int],
    *,
    rate: float,
    seconds: float,
    chunk_seconds: float,
    rng: random.Random,
) -> Tally:
    """Orders at `rate` a second and tracking hits beside them, in paced wrk runs."""
    tally = Tally()
    host = url.removeprefix("http://")
    per_second = rate * (1 + OPENS_PER_ORDER + CLICKS_PER_ORDER)
    began = time.monotonic()
    process_before = time.process_time()
    left = seconds
    while left >= 0.5:
        length = max(1, round(min(chunk_seconds, left)))  # wrk takes whole seconds
        left -= length
        build = time.thread_time()
        # A few percent over the schedule: a paced wrk that runs out stops with an error.
        count = math.ceil(per_second * length * 1.05) + SOAK_CONNECTIONS
        requests, is_order = chunk_requests(numbers, mailbox.recent(), host, count, rng)
        tally.build_cpu += time.thread_time() - build
        before = {name: meter.snapshot() for name, meter in meters.items()}
        wrk_before = children_cpu()
        result = wrkload.run(
            url,
            requests,
            connections=SOAK_CONNECTIONS,
            seconds=length,
            rate=per_second,
            distinct=True,
        )
        tally.wrk_cpu += children_cpu() - wrk_before
        api, database = meters["api"].since(before["api"])
        worker, _ = meters["worker"].since(before["worker"])
        tally.api_cpu += api
        tally.worker_cpu += worker
        tally.database_cpu += database
        tally.chunks += 1
        tally.requests += result.requests
        tally.orders += sum(is_order[: result.requests])
        tally.hits += result.requests - sum(is_order[: result.requests])
        tally.scheduled += per_second * result.seconds
        tally.non_2xx += result.non_2xx
        tally.socket_errors += result.socket_errors
        tally.wrk_seconds += result.seconds
        tally.worst_p99_ms = max(tally.worst_p99_ms, result.p99_ms)
        elapsed = time.monotonic() - began
        if tally.chunks % 5 == 0 or left < 0.5:
            print(
                f"  {elapsed / 60:.1f} min: {tally.orders} orders, {tally.hits} opens and "
                f"clicks answered ({result.rate:.1f} req/s this chunk, {result.latency()}); "
                f"{mailbox.received} mails",
                flush=True,
            )
    tally.wall_seconds = time.monotonic() - began
    tally.process_cpu = time.process_time() - process_before
    return tally


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


def share(cpu: float, seconds: float) -> str:
    return f"{cpu / seconds:.0%} of a core"


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
    parser.add_argument("--chunk-seconds", type=float, default=60, help="one paced wrk run")
    parser.add_argument("--warmup-seconds", type=float, default=60)
    parser.add_argument("--sample-seconds", type=float, default=30)
    parser.add_argument("--max-growth-mb", type=float, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not 1 <= args.chunk_seconds <= 240:
        # A chunk's orders are signed when it is built: the webhook refuses a signature
        # older than 5 minutes.
        parser.error("--chunk-seconds must be between 1 and 240")
    wrkload.wrk_path()  # fails early, saying how to install it
    rng = random.Random(args.seed)
    numbers = itertools.count()
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
        postgres = database_url.startswith("postgresql")
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
        if postgres:
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
        database = make_url(database_url).database if postgres else None
        # Both servers use the one database: its backends are counted once, with the API's.
        meters = {
            "api": wrkload.CpuMeter(processes["api"].pid, database),
            "worker": wrkload.CpuMeter(processes["worker"].pid),
        }
        # No pool: each asyncio.run below has its own loop, and a pooled connection would
        # belong to a loop that is gone.
        engine = create_async_engine(database_url, poolclass=NullPool)
        url = f"http://127.0.0.1:{port}"
        watcher = Watcher(
            mailbox,
            processes,
            warmup=min(args.warmup_seconds, args.minutes * 60 / 3),
            every=args.sample_seconds,
        )
        try:
            asyncio.run(wait_ready(f"{url}/healthz"))
            load_before = os.getloadavg()[0]  # the machine may be shared: a busy one is slower
            capacity = measure_capacity(
                url, engine, meters, numbers, burst_seconds=args.burst_seconds
            )
            mailbox.drain()
            rate = args.rate or capacity.rate / 2
            database_part = f", PostgreSQL {capacity.database_ms:.1f} ms" if postgres else ""
            print(
                f"capacity: {capacity.rate:.1f} orders/s end to end ({capacity.orders} orders "
                f"from a {args.burst_seconds:g} s closed-loop wrk burst, {BURST_CONNECTIONS} "
                f"connections, until the last of their {MESSAGES_PER_ORDER * capacity.orders} "
                f"mails was sent, {capacity.seconds:.0f} s; intake alone ran at "
                f"{capacity.intake_rate:.1f} orders/s, p99 {capacity.p99_ms:.0f} ms); "
                f"CPU per order: API {capacity.api_ms:.1f} ms, worker {capacity.worker_ms:.1f} "
                f"ms{database_part}, wrk {capacity.wrk_ms:.2f} ms",
                flush=True,
            )
            print(
                f"soaking at {rate:.1f} orders/s{' (--rate)' if args.rate else ' (half)'} with "
                f"{rate * OPENS_PER_ORDER:.1f} opens/s and {rate * CLICKS_PER_ORDER:.1f} clicks/s "
                f"for {args.minutes:g} min in paced wrk runs of {args.chunk_seconds:g} s, "
                f"{SOAK_CONNECTIONS} connections; public rate limit lifted "
                f"(AFTERSALE_PUBLIC_RATE_PER_MINUTE=0, all traffic from 127.0.0.1)",
                flush=True,
            )
            watcher.start()
            tally = soak(
                url,
                mailbox,
                meters,
                numbers,
                rate=rate,
                seconds=args.minutes * 60,
                chunk_seconds=args.chunk_seconds,
                rng=rng,
            )
            watcher.stop()
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
    print(
        f"soak ({kind}, {args.minutes:g} min at {rate:.1f} orders/s; load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on "
        f"{os.cpu_count()} cores):"
    )
    too_much = []
    for name, series in watcher.samples.items():
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
    held = tally.requests / max(tally.scheduled, 1)
    gaps = tally.wall_seconds - tally.wrk_seconds
    print(
        f"  schedule: {tally.requests} of {tally.scheduled:.0f} scheduled requests answered "
        f"({held:.1%}) in {tally.chunks} paced wrk runs; {gaps:.0f} s in all between runs "
        f"(building the next one); worst p99 of a run {tally.worst_p99_ms:.0f} ms"
    )
    wall = tally.wall_seconds
    requests = max(tally.requests, 1)
    orders = max(tally.orders, 1)
    database_part = (
        f", PostgreSQL {1000 * tally.database_cpu / requests:.2f} ms/request "
        f"({share(tally.database_cpu, wall)})"
        if postgres
        else ""
    )
    print(
        f"  CPU: API {1000 * tally.api_cpu / requests:.2f} ms/request "
        f"({share(tally.api_cpu, wall)}), worker {1000 * tally.worker_cpu / orders:.2f} ms/order "
        f"({share(tally.worker_cpu, wall)}){database_part}; load generator: wrk "
        f"{1000 * tally.wrk_cpu / requests:.3f} ms/request ({share(tally.wrk_cpu, wall)}), "
        f"building its requests {share(tally.build_cpu, wall)}, reading mail for tokens "
        f"{share(watcher.cpu, wall)}; this process in all (those, the SMTP sink, CPU meters) "
        f"{share(tally.process_cpu, wall)}"
    )
    print(
        f"  requests: {tally.requests} answered, {tally.orders} orders, {tally.hits} opens "
        f"and clicks; non-2xx (status > 399) {tally.non_2xx}; socket errors "
        f"{tally.socket_errors}"
    )
    print(
        f"  messages: {counts}; failed {counts.get('failed', 0)}, pending backlog {backlog}; "
        f"mails received {mailbox.received} ({duplicates} duplicates); "
        f"error lines in logs {len(errors_in_logs)}"
    )
    for line in errors_in_logs[:10]:
        print(f"    {line}")
    problems = []
    if tally.non_2xx or tally.socket_errors:
        problems.append("requests failed")
    if counts.get("failed", 0) or duplicates or errors_in_logs:
        problems.append("messages failed, repeated or errors logged")
    if held < 0.95:
        problems.append(f"only {held:.0%} of the scheduled requests were answered: rate not held")
    if backlog:
        problems.append(f"{backlog} messages still pending a minute after the load stopped")
    if too_much:
        problems.append(f"{', '.join(too_much)} grew by more than {args.max_growth_mb:g} MB")
    print(f"soak: {'FAILED: ' + '; '.join(problems) if problems else 'passed'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
