"""`aftersale suppressions list|remove`: read the list, and take addresses off it one by one
or in bulk. `--json` prints what the operator API answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.models import SuppressionReason
from app.suppressions import service
from app.suppressions.repository import get_suppression, list_suppressions
from app.suppressions.schemas import RemovalReportOut, SuppressionPage, suppression_page
from app.terminal import aligned, moment, one_line, page_problem, print_json

EXIT_OK = 0
EXIT_NOTHING = 1  # no address given was on the list
EXIT_USAGE = 2


def remove_command(
    *,
    settings: Settings,
    emails: Sequence[str],
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    note: str | None,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
    as_json: bool = False,
) -> int:
    """Remove the addresses given, or every entry matching --reason/--since/--until, and
    print what was (or, with --dry-run, would be) removed per reason. Addresses never go to
    stdout or the log in bulk mode: only counts. With `as_json`, the counts as
    POST /api/v1/suppressions/remove answers them."""
    if emails and (reason or since or until):
        print("aftersale suppressions remove: give addresses or filters, not both", file=stderr)
        return EXIT_USAGE
    if not emails and reason is None and since is None:
        print(
            "aftersale suppressions remove: give addresses, or --reason and/or --since",
            file=stderr,
        )
        return EXIT_USAGE
    reasons = [known.value for known in SuppressionReason]
    if reason is not None and reason not in reasons:
        print(
            f"aftersale suppressions remove: --reason {reason!r} is none of " + ", ".join(reasons),
            file=stderr,
        )
        return EXIT_USAGE
    if since is not None and until is not None and until <= since:
        print("aftersale suppressions remove: --until must be later than --since", file=stderr)
        return EXIT_USAGE
    report = asyncio.run(
        _remove(
            settings,
            emails=emails,
            reason=reason,
            since=since,
            until=until,
            dry_run=dry_run,
            note=note,
            clock=clock or SystemClock(),
        )
    )
    if as_json:
        print_json(
            RemovalReportOut(
                dry_run=report.dry_run, removed=report.removed, by_reason=report.by_reason
            ),
            stdout,
        )
    else:
        verb = "would remove" if dry_run else "removed"
        per_reason = ", ".join(
            f"{name} {count}" for name, count in sorted(report.by_reason.items())
        )
        print(f"{verb} {report.removed}" + (f" ({per_reason})" if per_reason else ""), file=stdout)
    if emails and report.removed < len(emails):
        print(f"{len(emails) - report.removed} address(es) not on the list", file=stderr)
        return EXIT_NOTHING if report.removed == 0 else EXIT_OK
    return EXIT_OK


async def _remove(
    settings: Settings,
    *,
    emails: Sequence[str],
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    note: str | None,
    clock: Clock,
) -> service.RemovalReport:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            now = clock.now()
            if not emails:
                return await service.remove_matching(
                    session,
                    reason=reason,
                    since=since,
                    until=until,
                    source=service.RemovalSource.CLI,
                    note=note,
                    now=now,
                    dry_run=dry_run,
                )
            report = service.RemovalReport(dry_run=dry_run)
            for email in emails:
                if dry_run:
                    found = await get_suppression(session, email)
                    found_reason = found.reason if found else None
                else:
                    removed = await service.remove_address(
                        session, email=email, source=service.RemovalSource.CLI, note=note, now=now
                    )
                    found_reason = removed.reason if removed else None
                if found_reason is not None:
                    report.by_reason[found_reason] = report.by_reason.get(found_reason, 0) + 1
            return report
    finally:
        await engine.dispose()


def list_command(
    *,
    settings: Settings,
    email: str | None,
    reason: str | None,
    cursor: int | None,
    limit: int,
    as_json: bool,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """GET /api/v1/suppressions: newest first, one page; the next page is `--cursor N`."""
    problem = page_problem(
        option="--reason",
        value=reason,
        choices=[known.value for known in SuppressionReason],
        limit=limit,
        cursor=cursor,
    )
    if problem is not None:
        print(f"aftersale suppressions list: {problem}", file=stderr)
        return EXIT_USAGE
    page = asyncio.run(_list(settings, email=email, reason=reason, cursor=cursor, limit=limit))
    if as_json:
        print_json(page, stdout)
        return EXIT_OK
    for line in format_page(page):
        print(line, file=stdout)
    return EXIT_OK


async def _list(
    settings: Settings, *, email: str | None, reason: str | None, cursor: int | None, limit: int
) -> SuppressionPage:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            rows = await list_suppressions(
                session, email=email, reason=reason, before_id=cursor, limit=limit
            )
            return suppression_page(rows, limit=limit)
    finally:
        await engine.dispose()


def format_page(page: SuppressionPage) -> list[str]:
    if not page.items:
        return ["no suppressions"]
    lines = aligned(
        [
            ("id", "email", "reason", "created_at", "detail"),
            *(
                (
                    str(item.id),
                    item.email,
                    item.reason,
                    moment(item.created_at),
                    one_line(item.detail),
                )
                for item in page.items
            ),
        ]
    )
    more = f"; next page: --cursor {page.next_cursor}" if page.next_cursor else ""
    return [*lines, f"{len(page.items)} suppression(s){more}"]
