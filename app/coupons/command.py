"""`aftersale coupons import POOL FILE [--shop SHOP]` and `aftersale coupons status [POOL]`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app.catalog.schemas import DEFAULT_SHOP
from app.clock import Clock, SystemClock
from app.config import Settings
from app.coupons import service
from app.coupons.codes import CodeLine, pool_problem, read_codes
from app.coupons.repository import PoolCounts
from app.db import create_engine, create_session_factory, transaction
from app.shops import normalize_host

EXIT_OK = 0
EXIT_NOTHING = 1  # import: no valid code in the file; status: no such pool
EXIT_USAGE = 2  # a bad pool name or shop, or a file that cannot be read

STATUS_COLUMNS = ("total", "free", "assigned", "redeemed", "expired")


def import_command(
    *,
    settings: Settings,
    pool: str,
    path: Path,
    shop: str | None,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """Add the file's valid codes to the pool and print the counts; refused lines go to
    stderr as `file:line: message`. Exit 1 only when the file had no valid code."""
    problem = pool_problem(pool)
    target = None
    if problem is None and shop is not None:
        target = normalize_host(shop) or (shop if shop == DEFAULT_SHOP else None)
        if target is None:
            problem = f"--shop: {shop!r} is not a host name (or {DEFAULT_SHOP!r})"
    if problem is not None:
        print(f"aftersale coupons import: {problem}", file=stderr)
        return EXIT_USAGE
    try:
        # Spreadsheets may start the file with a byte order mark.
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        print(f"aftersale coupons import: {path}: {exc.strerror or exc}", file=stderr)
        return EXIT_USAGE
    except UnicodeDecodeError:
        print(f"aftersale coupons import: {path}: not UTF-8 text", file=stderr)
        return EXIT_USAGE
    found = read_codes(text)
    for refused in found.refused:
        print(f"{path}:{refused.line}: {refused.message}", file=stderr)
    if not found.codes:
        print(f"aftersale coupons import: {path}: no valid code, nothing imported", file=stderr)
        return EXIT_NOTHING
    result = asyncio.run(
        _import(settings, pool=pool, shop=target, codes=found.codes, clock=clock or SystemClock())
    )
    print(
        f"{path}: {result.added} added, {result.already_in_pool} already in the pool, "
        f"{len(found.refused)} refused; pool {pool}, "
        + (f"shop {target}" if target else "any shop"),
        file=stdout,
    )
    return EXIT_OK


async def _import(
    settings: Settings,
    *,
    pool: str,
    shop: str | None,
    codes: Sequence[CodeLine],
    clock: Clock,
) -> service.ImportResult:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            return await service.import_codes(
                session, pool=pool, shop=shop, codes=codes, now=clock.now()
            )
    finally:
        await engine.dispose()


def status_command(
    *,
    settings: Settings,
    pool: str | None,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
) -> int:
    """One line per pool (or the one named): total, free, assigned, redeemed, expired."""
    problem = pool_problem(pool) if pool is not None else None
    if problem is not None:
        print(f"aftersale coupons status: {problem}", file=stderr)
        return EXIT_USAGE
    rows = asyncio.run(_status(settings, pool=pool, clock=clock or SystemClock()))
    if not rows:
        print("no coupon codes" + (f" in pool {pool}" if pool else ""), file=stderr)
        return EXIT_NOTHING if pool else EXIT_OK
    print(format_status(rows), file=stdout)
    return EXIT_OK


def format_status(rows: Sequence[PoolCounts]) -> str:
    """A plain table, numbers right-aligned."""
    header = ("pool", *STATUS_COLUMNS)
    lines = [header, *((row.pool, *(str(getattr(row, c)) for c in STATUS_COLUMNS)) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in lines
    )


async def _status(settings: Settings, *, pool: str | None, clock: Clock) -> list[PoolCounts]:
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await service.pool_status(session, now=clock.now(), pool=pool)
    finally:
        await engine.dispose()
