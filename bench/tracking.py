"""Open pixels and click redirects through a real uvicorn, against a bare one-row insert.

Ours: `aftersale serve --role api` answering `GET /o/{token}` and `GET /c/{token}` for the
real tokens of real sent mail: orders go in through the webhook, a `serve --role worker`
sends their tracked mail to an SMTP sink, and the pixel and link URLs are read from the
HTML that arrived. The worker is stopped before measuring. Each hit checks the token's MAC,
looks up the link and its message, classifies the visit and stores one event (a click also
locks its message and looks for a scanner's burst). Baseline: bench/bare_app.py, which
stores the token and the user agent in one row and answers a GIF or a 302. Both get the
same requests (user agents of people, Gmail's image proxy, Outlook, and Apple's Mail
Privacy Protection proxy from Apple's network via X-Forwarded-For) from the same client at
the same concurrency, on the same database.

All traffic comes from 127.0.0.1, so the per-IP limit on public links is lifted for our
server (AFTERSALE_PUBLIC_RATE_PER_MINUTE=0); the output says so.

    python bench/tracking.py [--requests 3000] [--messages 1000] [--concurrency 64]
                             [--database-url URL]

Default database: a fresh SQLite file. For PostgreSQL pass e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/bench (the database is emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import wrkload
from ingest import (
    bare_command,
    free_port,
    reset_postgres,
    wait_ready,
)
from sqlalchemy import make_url

from app.config import DEV_WEBHOOK_SECRET, ROOT
from app.intake.signature import sign

LINKS_HTML = """{% extends "_layouts/base.html" %}
{% block content %}
<p>Hi {{ customer.first_name or "there" }},</p>
<p><a href="https://shop.example/review?order={{ order.id }}&amp;utm_source=mail">
Review your order</a></p>
<p><a href="https://shop.example/care">Care guide</a> and
<a href="https://shop.example/faq">FAQ</a></p>
{% endblock %}
"""
LINKS_TEXT = """Hi {{ customer.first_name or "there" }},

Review your order: https://shop.example/review?order={{ order.id }}&utm_source=mail
{% with label="Unsubscribe" %}{% include "_partials/unsubscribe.txt" %}{% endwith %}
"""
LINKS_RULE = """rules:
  - id: links
    kind: marketing
    when: {event: order.created}
    send: {after: 0m}
    template: links
"""
# What fetches a pixel: (weight, user agent, network it comes from).
OPENERS = (
    (40, "Mozilla/5.0", "17.58.{}.{}"),  # Apple Mail Privacy Protection, from Apple's network
    (
        25,
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "66.249.{}.{}",
    ),
    (
        15,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        "198.51.{}.{}",
    ),
    (
        10,
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
        "203.0.{}.{}",
    ),
    (
        10,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "192.0.{}.{}",
    ),
)
# What follows a link: people's browsers, and a few security gateways.
CLICKERS = (
    (
        45,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "198.51.{}.{}",
    ),
    (
        35,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "203.0.{}.{}",
    ),
    (
        15,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0",
        "192.0.{}.{}",
    ),
    (5, "Mozilla/5.0 (compatible; Barracuda Sentinel)", "64.235.{}.{}"),
)


@dataclass(frozen=True)
class TrackedMail:
    pixel: str  # the /o/ token
    links: list[str]  # the visible /c/ tokens


class ReadMail(HTMLParser):
    """The pixel and the visible links of tracked HTML, as a mail client would find them."""

    def __init__(self) -> None:
        super().__init__()
        self.pixel = ""
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and "/c/" in values.get("href", ""):
            if "display:none" not in values.get("style", "").replace(" ", ""):  # the honeypot
                self.links.append(values["href"].rsplit("/c/", 1)[1])
        elif tag == "img" and "/o/" in values.get("src", ""):
            self.pixel = values["src"].rsplit("/o/", 1)[1]


def order_body(number: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "id": f"track-{number}",
            "type": "order.created",
            "occurred_at": now,
            "order": {
                "id": str(700000000000000000 + number),
                "created_at": now,
                "currency": "EUR",
                "total": "24.90",
                "items": [
                    {
                        "sku": "DIAPER-M-60",
                        "name": "Diapers M, 60 pcs",
                        "category": "baby/diapers",
                        "unit_price": "24.90",
                    }
                ],
            },
            "customer": {
                "id": f"t-{number}",
                "email": f"reader{number}@example.org",
                "first_name": "Anna",
                "locale": "en",
                "time_zone": "Europe/Berlin",
                "marketing_consent": True,
            },
        }
    ).encode()


def signed(body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "X-Aftersale-Timestamp": str(stamp),
        "X-Aftersale-Signature": sign(DEV_WEBHOOK_SECRET, stamp, body),
    }


def tracking_folder(folder: Path) -> tuple[Path, Path]:
    """The shipped templates plus `links` (three tracked links), and a rule sending it at once."""
    templates = folder / "templates"
    shutil.copytree(ROOT / "templates" / "email", templates)
    links = templates / "links" / "en"
    links.mkdir(parents=True)
    (links / "subject.txt").write_text("Your order {{ order.id }}")
    (links / "body.html").write_text(LINKS_HTML)
    (links / "body.txt").write_text(LINKS_TEXT)
    rules = folder / "rules"
    rules.mkdir()
    (rules / "links.yaml").write_text(LINKS_RULE)
    return templates, rules


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A server whose output goes to a file (an unread pipe fills up and stalls it)."""
    with log.open("wb") as output:
        return subprocess.Popen(command, env={**os.environ, **env}, stdout=output, stderr=output)


def smtp_sink() -> Any:
    sys.path.insert(0, str(ROOT))  # the tests' real SMTP server (aiosmtpd)
    from tests.smtp_sink import SmtpSink

    sink = SmtpSink()
    sink.start()
    return sink


async def send_mail(api_url: str, sink: Any, count: int) -> list[TrackedMail]:
    """Orders in through the webhook; the tracked mail the worker sent, as it arrived."""
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        numbers = iter(range(count))

        async def post() -> None:
            for number in numbers:
                body = order_body(number)
                response = await client.post(
                    f"{api_url}/webhooks/orders", content=body, headers=signed(body)
                )
                response.raise_for_status()

        await asyncio.gather(*(post() for _ in range(16)))
    deadline = time.monotonic() + 600
    while len(sink.received) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(sink.received)} of {count} mails arrived")
        await asyncio.sleep(0.2)
    mails = []
    for received in sink.received:
        reader = ReadMail()
        reader.feed(received.part("text/html"))
        if not reader.pixel or len(reader.links) != 3:
            raise RuntimeError("a sent mail lacks its pixel or tracked links")
        mails.append(TrackedMail(reader.pixel, reader.links))
    return mails


Hit = tuple[str, dict[str, str]]  # path, headers


def visits(mails: list[TrackedMail], count: int, rng: random.Random, *, kind: str) -> list[Hit]:
    """`count` hits, spread over the messages: each pixel fetched, each link followed, in turn."""
    visitors = OPENERS if kind == "o" else CLICKERS
    weights = [weight for weight, *_ in visitors]
    hits = []
    for index in range(count):
        mail = mails[index % len(mails)]
        token = mail.pixel if kind == "o" else rng.choice(mail.links)
        _, agent, network = rng.choices(visitors, weights)[0]
        address = network.format(rng.randrange(256), rng.randrange(1, 255))
        hits.append((f"/{kind}/{token}", {"User-Agent": agent, "X-Forwarded-For": address}))
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per kind and side")
    parser.add_argument("--messages", type=int, default=1000, help="sent mails to track")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database-url", default=os.environ.get("AFTERSALE_BENCH_DATABASE_URL"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small sizes: does it run?")
    args = parser.parse_args()
    if args.quick:
        args.messages = 100
    rng = random.Random(args.seed)
    bin_dir = Path(sys.executable).parent
    sink = smtp_sink()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        templates, rules = tracking_folder(folder)
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        ours_port, bare_port = free_port(), free_port()
        env = {
            "AFTERSALE_DATABASE_URL": database_url,
            "AFTERSALE_RULES_DIR": str(rules),
            "AFTERSALE_TEMPLATES_DIR": str(templates),
            "AFTERSALE_PUBLIC_URL": f"http://127.0.0.1:{ours_port}",
            "AFTERSALE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}?starttls=off&pool_size=8",
            "AFTERSALE_DISPATCH_INTERVAL": "0.2",
            # Every request comes from 127.0.0.1: the per-IP limit would answer 429.
            "AFTERSALE_PUBLIC_RATE_PER_MINUTE": "0",
        }
        if database_url.startswith("postgresql"):
            reset_postgres(database_url)
        subprocess.run(
            [bin_dir / "aftersale", "db", "upgrade"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        aftersale = str(bin_dir / "aftersale")
        ours_log = folder / "ours.log"
        ours = start([aftersale, "serve", "--role", "api", "--port", str(ours_port)], env, ours_log)
        worker = start([aftersale, "serve", "--role", "worker"], env, folder / "worker.log")
        bare = start(
            bare_command(bare_port),
            {"BARE_DATABASE_URL": database_url},
            folder / "bare.log",
        )
        postgres = database_url.startswith("postgresql")
        database = make_url(database_url).database if postgres else None
        failures: dict[str, int] = {}
        seconds = 3.0 if args.quick else args.seconds

        def load(url: str, requests: list[bytes], *, seconds: float) -> wrkload.WrkResult:
            return wrkload.run(
                url, requests, connections=args.connections, seconds=seconds, distinct=False
            )

        try:
            ours_url, bare_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{bare_port}"
            failures.update({ours_url: 0, bare_url: 0})
            asyncio.run(wait_ready(f"{ours_url}/healthz"))
            asyncio.run(wait_ready(f"{bare_url}/docs"))
            began = time.perf_counter()
            mails = asyncio.run(send_mail(ours_url, sink, args.messages))
            print(f"{len(mails)} tracked mails sent in {time.perf_counter() - began:.0f} s")
            worker.terminate()
            worker.wait(timeout=30)
            rates: dict[str, tuple[float, float]] = {}
            # Server CPU ms per request: steadier than the rates, which the shared machine
            # moves. PostgreSQL's backends too, when it is PostgreSQL.
            cpu_ms: dict[str, tuple[float, float, float, float]] = {}
            latency: dict[str, str] = {}
            meters = {
                ours_url: wrkload.CpuMeter(ours.pid, database),
                bare_url: wrkload.CpuMeter(bare.pid, database),
            }
            for kind in ("o", "c"):
                # Repeats are realistic here (a pixel fetched again): the hits cycle.
                hits = visits(mails, 20000, rng, kind=kind)
                requests = {
                    url: [
                        wrkload.http_request("GET", path, url.removeprefix("http://"), headers)
                        for path, headers in hits
                    ]
                    for url in (ours_url, bare_url)
                }
                for url in (ours_url, bare_url):
                    load(url, requests[url], seconds=2)
                # Baseline, ours, ours, baseline, half the time each: on a shared machine a
                # load that rises or falls during the run weighs on both alike.
                done = {bare_url: 0, ours_url: 0}
                took = {bare_url: 0.0, ours_url: 0.0}
                cpu = {bare_url: [0.0, 0.0], ours_url: [0.0, 0.0]}
                for url in (bare_url, ours_url, ours_url, bare_url):
                    before = meters[url].snapshot()
                    result = load(url, requests[url], seconds=seconds / 2)
                    server, postgres = meters[url].since(before)
                    cpu[url][0] += server
                    cpu[url][1] += postgres
                    done[url] += result.requests
                    took[url] += result.seconds
                    failures[url] += result.non_2xx + result.socket_errors
                    if url == ours_url:
                        latency[kind] = result.latency()
                rates[kind] = done[ours_url] / took[ours_url], done[bare_url] / took[bare_url]
                cpu_ms[kind] = (
                    1000 * cpu[ours_url][0] / done[ours_url],
                    1000 * cpu[bare_url][0] / done[bare_url],
                    1000 * cpu[ours_url][1] / done[ours_url],
                    1000 * cpu[bare_url][1] / done[bare_url],
                )
        except Exception:
            lines = [line for line in ours_log.read_text().splitlines() if " INFO " not in line]
            print("our server's log, but INFO:", *lines[-60:], sep="\n", file=sys.stderr)
            raise
        finally:
            for process in (ours, worker, bare):
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
            sink.stop()
    kind_name = "PostgreSQL" if postgres else "SQLite"
    print(
        f"public rate limit lifted for this run (AFTERSALE_PUBLIC_RATE_PER_MINUTE=0): "
        f"every request comes from 127.0.0.1; wrk 1 thread, {args.connections} connections, "
        f"{seconds:.0f} s per kind and side over {args.messages} messages"
    )
    for kind, label in (("o", "open"), ("c", "click")):
        ours_rate, bare_rate = rates[kind]
        ours_ms, bare_ms, ours_db, bare_db = cpu_ms[kind]
        print(
            f"tracking-{label} ({kind_name}, wrk): ours {ours_rate:.0f} req/s, "
            f"baseline {bare_rate:.0f} req/s, ratio {ours_rate / bare_rate:.2f} (goal >= 0.8); "
            f"server CPU ours {ours_ms:.2f} ms/request, bare {bare_ms:.2f} ms/request"
        )
        extra = f", PostgreSQL CPU ours {ours_db:.2f} ms, bare {bare_db:.2f} ms" if postgres else ""
        print(f"  {label}: saturated latency ours {latency[kind]}{extra}")
    broken = {url: count for url, count in failures.items() if count}
    if broken:
        print(f"tracking PROBLEM non-2xx/3xx answers or socket errors: {broken}")
        sys.exit(1)


if __name__ == "__main__":
    main()
