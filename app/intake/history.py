"""`aftersale import`: load past orders, so learned timing and `rebought_*` checks know them.

Nothing is sent: every event goes through `service.ingest_event` with `plan_messages=False`,
which stores customers, orders and items and records learned repurchase gaps, and plans no
message. Each event is a delivery of source `import` with a deterministic id (our JSON: its
event id; Shopify's export: `shopify-csv:<Name>`), so importing a file again changes nothing.
Orders are imported oldest first, as gaps are learned from the orders placed before.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.events import Envelope
from app.file_import import BadLine, ImportFileError, Progress
from app.intake import shopify_csv
from app.intake.aftersale import DEFAULT_SHOP
from app.intake.effects import intake_effects
from app.intake.jsonl import parse_line
from app.intake.payloads import PayloadError, describe
from app.orders import service
from app.progress import ProgressBar
from app.rules.loader import RuleSet, load_rules
from app.shops import normalize_host

SOURCE = "import"
FORMATS = ("jsonl", "shopify-csv")
# Records per transaction: a few hundred commits instead of one per order.
BATCH = 200


@dataclass(frozen=True)
class Record:
    """One line of our JSON, or one order of Shopify's export, with its first line number."""

    line: int
    events: tuple[Envelope, ...]
    raw: str  # kept as the deliveries' body, as a webhook's is

    @property
    def at(self) -> datetime:
        placed = [event for event in self.events if event.type == "order.created"]
        return (placed or list(self.events))[0].occurred_at


@dataclass
class Report:
    imported: int = 0
    already_imported: int = 0
    without_email: int = 0
    failed: list[BadLine] = field(default_factory=list)


def read_jsonl(data: bytes) -> tuple[list[Record], list[BadLine]]:
    """One `POST /webhooks/orders` body per line, validated as the webhook does."""
    records, bad = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            event = parse_line(line)
        except ValidationError as exc:
            bad.append(BadLine(number, describe(exc)))
            continue
        records.append(Record(number, (event,), line.decode("utf-8", errors="replace")))
    return records, bad


def read_shopify_csv(text: str) -> tuple[list[Record], list[BadLine], int]:
    """Records of Shopify's orders export, bad orders, and how many orders had no email."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    missing = shopify_csv.missing_columns(header)
    if missing:
        raise ImportFileError(
            f"not a Shopify orders export: no {', '.join(repr(c) for c in missing)} column"
        )
    bad: list[BadLine] = []
    orders: dict[str, tuple[int, list[dict[str, str]]]] = {}
    last_line = reader.line_num
    for row in reader:
        line, last_line = last_line + 1, reader.line_num  # a quoted cell may span lines
        name = (row.get("Name") or "").strip()
        if not name:
            bad.append(BadLine(line, "Name: missing"))
            continue
        orders.setdefault(name, (line, []))[1].append(row)
    records, without_email = [], 0
    for line, rows in orders.values():
        try:
            events = shopify_csv.order_events(rows)
        except shopify_csv.NoEmail:
            without_email += 1
            continue
        except PayloadError as exc:
            bad.append(BadLine(line, f"{rows[0]['Name'].strip()}: {exc}"))
            continue
        records.append(Record(line, tuple(events), _csv_text(header, rows)))
    return records, sorted(bad, key=lambda problem: problem.line), without_email


async def import_records(
    session_factory: async_sessionmaker[AsyncSession],
    records: Sequence[Record],
    *,
    shop: str,
    rules: RuleSet,
    default_time_zone: str,
    now: datetime,
    report: Report,
    progress: Progress | None = None,
) -> Report:
    """Ingest the records oldest first, without planning messages; counts go to `report`."""
    ordered = sorted(records, key=lambda record: record.at)
    for start in range(0, len(ordered), BATCH):
        async with transaction(session_factory) as session:
            for record in ordered[start : start + BATCH]:
                statuses = [
                    (
                        await service.ingest_event(
                            session,
                            source=SOURCE,
                            shop=shop,
                            event=event,
                            raw_body=record.raw,
                            rules=rules,
                            now=now,
                            default_time_zone=default_time_zone,
                            plan_messages=False,
                            # The past was not brought by our mail: no conversions.
                            effects=intake_effects(attribution=None),
                        )
                    ).status
                    for event in record.events
                ]
                if "accepted" in statuses:
                    report.imported += 1
                else:
                    report.already_imported += 1
        if progress is not None:
            progress("importing", min(start + BATCH, len(ordered)), len(ordered))
    return report


def import_command(
    *,
    settings: Settings,
    path: Path,
    file_format: str,
    shop: str | None,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """Import the file and print what happened: 0 when every record was read, 1 when some
    line failed (the others are imported), 2 when the rules cannot be loaded."""
    try:
        target = _shop(file_format, shop)
        records, report = _read(path, file_format)
    except ImportFileError as exc:
        print(f"aftersale import: {exc}", file=stderr)
        return 1
    rules = load_rules(settings.rules_dir, bounds=settings.rules_bounds)
    if rules.errors:
        # Learned intervals need the rules: an import without them would learn nothing.
        for error in rules.errors:
            print(error, file=stderr)
        print(f"aftersale import: {len(rules.errors)} error(s) in the rules", file=stderr)
        return 2
    bar = ProgressBar(stderr) if stderr.isatty() else None
    try:
        asyncio.run(
            _import(
                settings,
                records,
                shop=target,
                rules=rules,
                now=(clock or SystemClock()).now(),
                report=report,
                progress=bar.update if bar else None,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    for problem in report.failed:
        print(f"{path}:{problem.line}: {problem.message}", file=stderr)
    unit = "orders" if file_format == "shopify-csv" else "events"
    summary = (
        f"{path}: {report.imported} {unit} imported, {report.already_imported} already "
        f"imported (skipped), {len(report.failed)} failed"
    )
    if report.without_email:
        summary += f", {report.without_email} without an email address (ignored)"
    print(summary + f"; shop {target}; no message planned", file=stdout)
    return 1 if report.failed else 0


def _shop(file_format: str, shop: str | None) -> str:
    if shop is None:
        if file_format == "shopify-csv":
            # Live webhooks key everything by the shop's domain: history must match it.
            raise ImportFileError(
                "--shop is required with shopify-csv (e.g. my-shop.myshopify.com)"
            )
        return DEFAULT_SHOP
    host = normalize_host(shop)
    if host is None and shop != DEFAULT_SHOP:
        raise ImportFileError(f"--shop: {shop!r} is not a host name")
    return host or DEFAULT_SHOP


def _read(path: Path, file_format: str) -> tuple[list[Record], Report]:
    try:
        if file_format == "shopify-csv":
            # Excel and Shopify may start the file with a byte order mark.
            with path.open(encoding="utf-8-sig", newline="") as file:
                text = file.read()
            records, bad, without_email = read_shopify_csv(text)
            return records, Report(failed=bad, without_email=without_email)
        records, bad = read_jsonl(path.read_bytes())
        return records, Report(failed=bad)
    except OSError as exc:
        raise ImportFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{path}: not UTF-8 text") from None


async def _import(
    settings: Settings,
    records: Sequence[Record],
    *,
    shop: str,
    rules: RuleSet,
    now: datetime,
    report: Report,
    progress: Progress | None,
) -> None:
    engine = create_engine(settings.database_url)
    try:
        await import_records(
            create_session_factory(engine),
            records,
            shop=shop,
            rules=rules,
            default_time_zone=settings.default_time_zone,
            now=now,
            report=report,
            progress=progress,
        )
    finally:
        await engine.dispose()


def _csv_text(header: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
