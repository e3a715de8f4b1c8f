"""`aftersale catalog import FILE`: our product JSON (one object a line), or Shopify's
products CSV export, into the catalog. Importing a file again changes nothing."""

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

from app.catalog import service, shopify_csv
from app.catalog.platforms import describe
from app.catalog.schemas import DEFAULT_SHOP, Platform, ProductIn, shop_name
from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.file_import import BadLine, ImportFileError, Progress
from app.orders.late import ProductKeys, facts_before, match_late_items
from app.progress import ProgressBar
from app.rules.loader import RuleSet, load_rules

FORMATS = ("jsonl", "shopify-csv")
# Products per transaction: a few hundred commits for a large catalog, not one per product.
BATCH = 200


@dataclass
class Report:
    counts: service.UpsertReport = field(default_factory=service.UpsertReport)
    failed: list[BadLine] = field(default_factory=list)
    # Recent order items that waited for these products, and what they now planned.
    items_matched: int = 0
    messages_planned: int = 0


def read_jsonl(data: bytes) -> tuple[list[tuple[int, ProductIn]], list[BadLine]]:
    """One product of our JSON (as in PUT /api/v1/products) per line."""
    products, bad = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            products.append((number, ProductIn.model_validate_json(line)))
        except ValidationError as exc:
            bad.append(BadLine(number, _json_problem(exc)))
    return products, bad


def _json_problem(exc: ValidationError) -> str:
    if any(error["type"] == "json_invalid" for error in exc.errors()):
        return "not a JSON object"
    return describe(exc)


def read_shopify_csv(
    text: str, *, shop: str, currency: str | None
) -> tuple[list[tuple[int, ProductIn]], list[BadLine]]:
    """The products of Shopify's products export, each with the line of its first row."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    missing = shopify_csv.missing_columns(header)
    if missing:
        raise ImportFileError(
            f"not a Shopify products export: no {', '.join(repr(c) for c in missing)} column"
        )
    bad: list[BadLine] = []
    handles: dict[str, tuple[int, list[dict[str, str | None]]]] = {}
    last_line = reader.line_num
    for row in reader:
        line, last_line = last_line + 1, reader.line_num  # a quoted cell may span lines
        handle = (row.get("Handle") or "").strip()
        if not handle:
            bad.append(BadLine(line, "Handle: missing"))
            continue
        handles.setdefault(handle, (line, []))[1].append(row)
    products = []
    for line, rows in handles.values():
        try:
            products.append(
                (line, shopify_csv.product_from_rows(rows, shop=shop, currency=currency))
            )
        except shopify_csv.RowError as exc:
            bad.append(BadLine(line, f"{rows[0]['Handle']}: {exc}"))
    return products, sorted(bad, key=lambda problem: problem.line)


async def import_products(
    session_factory: async_sessionmaker[AsyncSession],
    products: Sequence[ProductIn],
    *,
    shop: str,
    platform: Platform,
    currency: str | None,
    now: datetime,
    report: Report,
    progress: Progress | None = None,
    late: LateItems | None = None,
) -> Report:
    """Store the products, a batch a transaction; with `late`, link the recent order items
    that waited for them and plan what now matches (in the batch's transaction)."""
    for start in range(0, len(products), BATCH):
        batch = products[start : start + BATCH]
        async with transaction(session_factory) as session:
            keys = ProductKeys.of(batch)
            before = await facts_before(session, shop=shop, keys=keys) if late else {}
            counts = await service.upsert_products(
                session, shop=shop, platform=platform, products=batch, currency=currency, now=now
            )
            if late is not None:
                matched = await match_late_items(
                    session,
                    shop=shop,
                    keys=keys,
                    before=before,
                    rules=late.rules,
                    now=now,
                    late_days=late.days,
                    default_time_zone=late.default_time_zone,
                )
                report.items_matched += matched.items
                report.messages_planned += matched.messages_planned
        report.counts.add(counts)
        if progress is not None:
            progress("importing", min(start + BATCH, len(products)), len(products))
    return report


@dataclass(frozen=True)
class LateItems:
    """What matching waiting order items needs: the rules, CATALOG_LATE_DAYS, the zone."""

    rules: RuleSet
    days: int
    default_time_zone: str


def import_command(
    *,
    settings: Settings,
    path: Path,
    file_format: str,
    shop: str | None,
    platform: Platform | None,
    currency: str | None,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """Import the file and print the counts: 0 when every line was read, 1 when some failed
    (the others are imported) or the file cannot be read at all, 2 when the rules cannot be
    loaded (recent orders waiting for these products are planned with them)."""
    try:
        target, kind = _target(file_format, shop, platform, currency)
        products, bad = _read(path, file_format, shop=target, currency=currency)
    except ImportFileError as exc:
        print(f"aftersale catalog import: {exc}", file=stderr)
        return 1
    rules = load_rules(settings.rules_dir)
    if rules.errors:
        for error in rules.errors:
            print(error, file=stderr)
        print(f"aftersale catalog import: {len(rules.errors)} error(s) in the rules", file=stderr)
        return 2
    late = LateItems(
        rules=rules, days=settings.catalog_late_days, default_time_zone=settings.default_time_zone
    )
    report = Report(failed=bad)
    bar = ProgressBar(stderr) if stderr.isatty() else None
    try:
        asyncio.run(
            _import(
                settings,
                [product for _, product in products],
                shop=target,
                platform=kind,
                currency=currency,
                now=(clock or SystemClock()).now(),
                report=report,
                progress=bar.update if bar else None,
                late=late,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    for problem in report.failed:
        print(f"{path}:{problem.line}: {problem.message}", file=stderr)
    counts = report.counts
    print(
        f"{path}: {counts.added} products added, {counts.updated} updated, "
        f"{counts.unchanged} unchanged, {counts.stale} older than the catalog's (skipped), "
        f"{len(report.failed)} failed; shop {target}",
        file=stdout,
    )
    if report.items_matched:
        print(
            f"{path}: {report.items_matched} recent order items found their products, "
            f"{report.messages_planned} messages planned",
            file=stdout,
        )
    return 1 if report.failed else 0


def _target(
    file_format: str, shop: str | None, platform: Platform | None, currency: str | None
) -> tuple[str, Platform]:
    if currency is not None and not (
        len(currency) == 3 and currency.isalpha() and currency.isupper()
    ):
        raise ImportFileError(f"--currency: {currency!r} is not an ISO 4217 code like EUR")
    if file_format == "shopify-csv":
        if shop is None:
            # Webhooks and orders key everything by the shop's domain: the catalog must match.
            raise ImportFileError(
                "--shop is required with shopify-csv (e.g. my-shop.myshopify.com)"
            )
        if platform not in (None, "shopify"):
            raise ImportFileError("--platform: a Shopify export is of platform shopify")
        platform = "shopify"
    try:
        return shop_name(shop or DEFAULT_SHOP), platform or "custom"
    except ValueError as exc:
        raise ImportFileError(f"--shop: {exc}") from None


def _read(
    path: Path, file_format: str, *, shop: str, currency: str | None
) -> tuple[list[tuple[int, ProductIn]], list[BadLine]]:
    try:
        if file_format == "shopify-csv":
            # Excel and Shopify may start the file with a byte order mark.
            with path.open(encoding="utf-8-sig", newline="") as file:
                return read_shopify_csv(file.read(), shop=shop, currency=currency)
        return read_jsonl(path.read_bytes())
    except OSError as exc:
        raise ImportFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{path}: not UTF-8 text") from None


async def _import(
    settings: Settings,
    products: Sequence[ProductIn],
    *,
    shop: str,
    platform: Platform,
    currency: str | None,
    now: datetime,
    report: Report,
    progress: Progress | None,
    late: LateItems,
) -> None:
    engine = create_engine(settings.database_url)
    try:
        await import_products(
            create_session_factory(engine),
            products,
            shop=shop,
            platform=platform,
            currency=currency,
            now=now,
            report=report,
            progress=progress,
            late=late,
        )
    finally:
        await engine.dispose()
