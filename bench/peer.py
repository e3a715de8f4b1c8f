"""Ours against the straightforward peer: one APScheduler 3 job per email (bench/peer_app.py).

Throughput: `aftersale serve --role api` with the shipped rules and the peer, both in a real
uvicorn with the same settings, driven by wrk (bench/wrkload.py: its own process, one
thread) with bench/ingest.py's payloads (signed orders of 3 items, each distinct, the same
ones to both) over the same connections for the same time, on the same database server,
each on a fresh schema. Rounds alternate which goes first, so a burst of load from elsewhere
on the machine falls on both. bench/bare_app.py's one-row insert runs in the same rounds, for
scale.
The emails each plans are counted from its store (the same planner: the same
emails), and the CPU time each server process used per order is read from /proc: on a
machine shared with other work that figure is steadier than the rates.

Downtime: N orders whose one email (a temporary rule: 1 minute after purchase) falls due a
little after both sides can have taken them all in (the orders are placed a minute before
that). The peer's process is stopped before they fall due and started again 10 s after,
with APScheduler's defaults (misfire_grace_time 1 s). Ours runs no worker until the same
moment, then `aftersale serve --role worker` sends to an SMTP sink in its own process.
Counted: mails received (ours); jobs run and jobs reported missed (peer).

    python bench/peer.py [--seconds 10] [--rounds 2] [--concurrency 64] [--database-url URL]
                         [--quick]

Needs PostgreSQL (default postgresql+asyncpg://postgres@127.0.0.1:5432/bench; the database
is emptied). The throughput is also measured on SQLite files unless --no-sqlite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import wrkload
from ingest import (
    bare_command,
    closed_loop,
    free_port,
    headers,
    order_body,
    reset_postgres,
    wait_ready,
)
from sink import SinkProcess
from sqlalchemy import make_url, text

from app.config import ROOT
from app.db import create_engine

BIN = Path(sys.executable).parent
DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
# The last line of a traceback: `sqlalchemy.exc.TimeoutError: QueuePool limit …`.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\b")
# A log record (ours: a timestamp; the peer: uvicorn's "INFO:"), not a traceback line.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d |[A-Z]+: )")
GRACE_DOWN = 10.0  # seconds the peer stays down after the emails fall due
# One email 1 minute after purchase; the orders are placed a minute before the due time.
DOWNTIME_RULE = """\
rules:
  - id: downtime-check
    name: One email a minute after purchase
    kind: transactional
    when: {event: order.created}
    send: {after: 1m}
    template: thank-you
"""


@dataclass
class Stores:
    """Where each side keeps its data: ours one URL, the peer its tables and its job store."""

    kind: str
    ours: str
    peer: str
    peer_jobs: str
    logs: Path  # each process's output, shown when a run fails


@dataclass
class Side:
    """One side's run: where it listens, and what it took."""

    process: subprocess.Popen[bytes]
    url: str
    signed: bool = True
    orders: int = 0  # answered 200
    failed: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # of its server process
    emails: int = 0  # planned over the whole run, warm-up included
    posted: int = 0  # orders stored over the whole run, warm-up included

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    @property
    def emails_per_order(self) -> float:
        return self.emails / self.posted

    @property
    def cpu_ms_per_order(self) -> float:
        return 1000 * self.cpu / (self.orders + self.failed)


@dataclass
class Measured:
    kind: str
    ours: Side
    peer: Side
    bare: Side  # the one-row insert: what no intake can beat on this machine
    failures: list[str]
    peer_errors: list[str]  # the exceptions in the peer's log during the run


def stores_for(database_url: str, folder: str) -> Stores:
    if database_url.startswith("sqlite"):
        return Stores(
            "sqlite",
            f"sqlite+aiosqlite:///{folder}/ours.db",
            f"sqlite+aiosqlite:///{folder}/peer.db",
            # Its own file, as tutorials do: a blocking writer on the app's file would wait
            # on the app's own open transactions.
            f"sqlite:///{folder}/jobs.db",
            Path(folder),
        )
    jobs = make_url(database_url).set(drivername="postgresql+psycopg")
    return Stores(
        "postgresql",
        database_url,
        database_url,
        jobs.render_as_string(hide_password=False),
        Path(folder),
    )


def fresh(stores: Stores) -> None:
    """An empty schema for both: ours migrated, the peer's made by its own startup."""
    if stores.kind == "postgresql":
        reset_postgres(stores.ours)
    else:
        for url in (stores.ours, stores.peer, stores.peer_jobs):
            Path(make_url(url).database or "").unlink(missing_ok=True)
    subprocess.run(
        [BIN / "aftersale", "db", "upgrade"],
        env={**os.environ, "AFTERSALE_DATABASE_URL": stores.ours},
        check=True,
        capture_output=True,
    )


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """bench/ingest.py's start, with the output kept: a 500 in the run is explained there."""
    with log.open("ab") as output:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )


def start_ours(
    stores: Stores, port: int, rules_dir: Path, role: str = "api", **env: str
) -> subprocess.Popen[bytes]:
    command = [str(BIN / "aftersale"), "serve", "--role", role]
    if role != "worker":
        command += ["--port", str(port)]
    return start(
        command,
        {"AFTERSALE_DATABASE_URL": stores.ours, "AFTERSALE_RULES_DIR": str(rules_dir), **env},
        stores.logs / f"ours-{role}.log",
    )


def start_peer(stores: Stores, port: int, rules_dir: Path) -> subprocess.Popen[bytes]:
    # The same uvicorn settings as `aftersale serve`: one process, loop and HTTP parser
    # chosen by uvicorn (uvloop, httptools), no access log, proxy headers on.
    return start(
        [
            str(BIN / "uvicorn"),
            "--app-dir",
            str(ROOT / "bench"),
            "peer_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "info",
            "--no-access-log",
            "--proxy-headers",
        ],
        {
            "PEER_DATABASE_URL": stores.peer,
            "PEER_JOBSTORE_URL": stores.peer_jobs,
            "PEER_RULES_DIR": str(rules_dir),
        },
        stores.logs / "peer.log",
    )


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


async def scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text(sql))
    finally:
        await engine.dispose()


def peer_stats(port: int) -> dict[str, int]:
    response = httpx.get(f"http://127.0.0.1:{port}/peer/stats", timeout=30)
    response.raise_for_status()
    return dict(response.json())


def throughput(
    stores: Stores, *, seconds: float, rounds: int, warm: int, concurrency: int, seed: int
) -> Measured:
    rng = random.Random(seed)
    fresh(stores)
    ours_port, peer_port = free_port(), free_port()
    ours = Side(
        start_ours(stores, ours_port, ROOT / "rules"),
        f"http://127.0.0.1:{ours_port}/webhooks/orders",
    )
    peer = Side(
        start_peer(stores, peer_port, ROOT / "rules"),
        f"http://127.0.0.1:{peer_port}/webhooks/orders",
    )
    bare_port = free_port()
    bare = Side(
        start(
            bare_command(bare_port),
            {"BARE_DATABASE_URL": stores.ours},
            stores.logs / "bare.log",
        ),
        f"http://127.0.0.1:{bare_port}/ingest",
        signed=False,
    )
    failures: list[str] = []
    log_start = peer_log_size(stores)
    try:
        asyncio.run(wait_ready(f"http://127.0.0.1:{ours_port}/healthz"))
        asyncio.run(wait_ready(f"http://127.0.0.1:{peer_port}/peer/stats"))
        asyncio.run(wait_ready(f"http://127.0.0.1:{bare_port}/docs"))
        # All get exactly the same bodies; their tables are apart.
        warm_bodies = [order_body(n, rng) for n in range(10**6, 10**6 + warm)]
        for side in (ours, peer, bare):
            asyncio.run(closed_loop(side.url, warm_bodies, concurrency=8, signed=side.signed))
        # As many distinct orders per round as 1,500 a second would need: each side gets
        # the same ones, in the same order, from wrk (bench/wrkload.py).
        per_round = int(1500 * seconds) + 500
        for index in range(rounds):
            bodies = [order_body(n, rng) for n in range(index * per_round, (index + 1) * per_round)]
            for side in (peer, ours, bare) if index % 2 == 0 else (bare, ours, peer):
                host = side.url.split("/")[2]
                path = "/" + side.url.split("/", 3)[3]
                requests = [
                    wrkload.http_request("POST", path, host, headers(body, side.signed), body)
                    for body in bodies
                ]
                before = wrkload.tree_cpu(side.process.pid)
                result = wrkload.run(
                    f"http://{host}",
                    requests,
                    connections=concurrency,
                    seconds=seconds,
                    distinct=side.signed,
                )
                side.cpu += wrkload.used(before, wrkload.tree_cpu(side.process.pid))
                side.seconds += result.seconds
                failed = result.non_2xx + result.socket_errors
                side.orders += result.requests - result.non_2xx
                side.failed += failed
                if failed:
                    failures.append(
                        f"{side.url}: {result.non_2xx} non-2xx, "
                        f"{result.socket_errors} socket errors"
                    )
        # Stored orders, not wrk's count: the requests in flight when wrk stops are answered
        # (and plan their emails) after it has stopped counting; a moment for the last.
        time.sleep(3)
        ours.posted = asyncio.run(scalar(stores.ours, "SELECT count(*) FROM orders"))
        peer.posted = asyncio.run(scalar(stores.peer, "SELECT count(*) FROM peer_orders"))
        ours.emails = asyncio.run(
            scalar(stores.ours, "SELECT count(*) FROM messages WHERE status = 'scheduled'")
        )
        # Jobs added: those still waiting, those run, those dropped as missed.
        stats = peer_stats(peer_port)
        peer.emails = stats["waiting"] + stats["sent"] + stats["missed"]
    finally:
        stop(ours.process, peer.process, bare.process)
    return Measured(stores.kind, ours, peer, bare, failures, peer_errors(stores, log_start))


def peer_log_size(stores: Stores) -> int:
    log = stores.logs / "peer.log"
    return log.stat().st_size if log.exists() else 0


def peer_errors(stores: Stores, start: int) -> list[str]:
    """The exception lines the peer logged after byte `start` of its log: why it failed."""
    with (stores.logs / "peer.log").open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    return [line[:120] for line in lines if EXCEPTION_LINE.match(line)]


def placed(body: bytes, at: datetime) -> bytes:
    """The same order, placed (and sent by the shop) at `at`."""
    data = json.loads(body)
    stamp = at.isoformat().replace("+00:00", "Z")
    data["occurred_at"] = data["order"]["created_at"] = stamp
    return json.dumps(data).encode()


@dataclass
class Downtime:
    emails: int
    lead: float
    slack: float
    ours_sent: int
    peer_ran: int
    peer_missed: int
    peer_waiting: int


async def post_to_both(bodies: list[bytes], *ports: int) -> None:
    # At once, so the due time can be close: neither side waits for the other.
    await asyncio.gather(
        *(
            closed_loop(
                f"http://127.0.0.1:{port}/webhooks/orders", bodies, concurrency=8, signed=True
            )
            for port in ports
        )
    )


def downtime(stores: Stores, *, emails: int, lead: float, seed: int) -> Downtime:
    """Stop both senders before `emails` fall due, start them 10 s after: what is sent?"""
    rng = random.Random(seed)
    fresh(stores)
    with tempfile.TemporaryDirectory() as folder:
        rules_dir = Path(folder)
        (rules_dir / "downtime.yaml").write_text(DOWNTIME_RULE)
        ours_port, peer_port = free_port(), free_port()
        ours = start_ours(stores, ours_port, rules_dir)
        peer = start_peer(stores, peer_port, rules_dir)
        try:
            asyncio.run(wait_ready(f"http://127.0.0.1:{ours_port}/healthz"))
            asyncio.run(wait_ready(f"http://127.0.0.1:{peer_port}/peer/stats"))
            due = datetime.now(UTC) + timedelta(seconds=lead)
            bodies = [placed(order_body(n, rng), due - timedelta(minutes=1)) for n in range(emails)]
            asyncio.run(post_to_both(bodies, ours_port, peer_port))
            before = peer_stats(peer_port)
            if before["waiting"] != emails:
                raise RuntimeError(f"the peer holds {before['waiting']} jobs, not {emails}")
        finally:
            stop(ours, peer)  # ours has no worker running: nothing is sent yet either
        slack = (due - datetime.now(UTC)).total_seconds()
        if slack <= 0:
            raise RuntimeError(f"ingest ran {-slack:.1f} s past the due time: raise the lead")
        time.sleep(slack + GRACE_DOWN)
        sink = SinkProcess().start()  # its own process: its CPU is charged to neither side
        peer = start_peer(stores, peer_port, rules_dir)
        worker = start_ours(
            stores,
            0,
            rules_dir,
            role="worker",
            AFTERSALE_SMTP_URL=f"smtp://127.0.0.1:{sink.port}?starttls=off",
        )
        try:
            asyncio.run(wait_ready(f"http://127.0.0.1:{peer_port}/peer/stats"))
            received, deadline = 0, time.monotonic() + 120
            while time.monotonic() < deadline:
                stats = peer_stats(peer_port)
                received, _ = sink.count()
                if received >= emails and stats["waiting"] == 0:
                    break
                time.sleep(0.5)
        finally:
            stop(peer, worker)
            sink.stop()
    return Downtime(
        emails=emails,
        lead=lead,
        slack=slack,
        ours_sent=received,
        peer_ran=stats["sent"],
        peer_missed=stats["missed"],
        peer_waiting=stats["waiting"],
    )


def report(measured: Measured, concurrency: int) -> None:
    ours, peer = measured.ours, measured.peer
    print(
        f"peer ({measured.kind}): ours {ours.rate:.0f} orders/s, "
        f"baseline {peer.rate:.0f} orders/s, ratio {ours.rate / peer.rate:.2f} (goal >= 3)",
        flush=True,
    )
    print(
        f"  {ours.orders + ours.failed} orders ours, {peer.orders + peer.failed} the peer's, "
        f"wrk with {concurrency} connections; "
        f"planned emails: ours {ours.rate * ours.emails_per_order:.0f}/s "
        f"({ours.emails_per_order:.2f} per order), "
        f"peer {peer.rate * peer.emails_per_order:.0f}/s ({peer.emails_per_order:.2f} per order); "
        f"server CPU per order: ours {ours.cpu_ms_per_order:.1f} ms, "
        f"peer {peer.cpu_ms_per_order:.1f} ms",
        flush=True,
    )
    bare = measured.bare
    print(
        f"  the bare one-row insert in the same rounds: {bare.rate:.0f} req/s "
        f"({bare.rate / peer.rate:.2f} x the peer); ours is at {ours.rate / bare.rate:.2f} of "
        f"it, and 3 x the peer would be {3 * peer.rate:.0f} orders/s, "
        f"{3 * peer.rate / bare.rate:.2f} x the bare insert",
        flush=True,
    )
    if ours.failed or peer.failed:
        print(
            f"  failed answers: ours {ours.failed}, peer {peer.failed} "
            f"({'; '.join(measured.failures)}); the peer logged: "
            + "; ".join(f"{n} x {line}" for line, n in Counter(measured.peer_errors).items()),
            flush=True,
        )


def measure(args: argparse.Namespace, folder: str, warm: int) -> Downtime:
    options = dict(
        seconds=args.seconds, rounds=args.rounds, warm=warm, concurrency=args.concurrency
    )
    postgres = stores_for(args.database_url, folder)
    measured = throughput(postgres, seed=args.seed, **options)
    report(measured, args.concurrency)
    # Room to post every order to both sides at once before any falls due, with a margin
    # for the noise of a shared machine, plus 2 s.
    slowest = min(measured.ours.rate, measured.peer.rate)
    lead = 2 + 1.5 * args.downtime_emails / slowest
    result = downtime(postgres, emails=args.downtime_emails, lead=lead, seed=args.seed)
    if not args.no_sqlite:
        measured = throughput(stores_for("sqlite", folder), seed=args.seed, **options)
        report(measured, args.concurrency)
    return result


def traceback_end(lines: list[str], first: int) -> list[str]:
    """The last lines of the traceback starting at `first` (it ends at the next log line)."""
    end = first + 1
    while end < len(lines) and not LOG_LINE.match(lines[end]):
        end += 1
    return lines[max(first, end - 40) : end]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per side and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--downtime-emails", type=int, default=200)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--quick", action="store_true", help="small sizes: does it run?")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be PostgreSQL (SQLite runs on its own)")
    if args.quick:
        args.seconds, args.rounds, args.downtime_emails = 3, 1, 50
    warm = 50 if args.quick else 100
    print(
        f"peer settings: {args.seconds:g} s per side in {args.rounds} alternating rounds "
        f"(+{warm} warm-up orders), wrk with {args.concurrency} connections, shipped rules; "
        f"downtime: {args.downtime_emails} emails, peer down until {GRACE_DOWN:.0f} s after due",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        try:
            result = measure(args, folder, warm)
        except BaseException:
            for log in sorted(Path(folder).glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()
                # The end of the first traceback says why a request failed; else, how the
                # process ended.
                first = next((i for i, line in enumerate(lines) if "Traceback" in line), None)
                shown = lines[-25:] if first is None else traceback_end(lines, first)
                print(f"--- {log.name}:", *shown, sep="\n", file=sys.stderr)
            raise
    n = result.emails
    print(
        f"peer-downtime: ours {result.ours_sent}/{n} sent after the restart, "
        f"peer {result.peer_ran}/{n} ran ({result.peer_missed} dropped as missed)",
        flush=True,
    )
    print(
        f"  due {result.lead:.1f} s after ingest began, {result.slack:.1f} s after both "
        f"were stopped; restarted {GRACE_DOWN:.0f} s after due; "
        f"peer jobs left waiting: {result.peer_waiting}",
        flush=True,
    )


if __name__ == "__main__":
    main()
