"""`aftersale messages list|show|cancel|fail`: the operator API's reads and actions over the
outbox, from a shell. `--json` prints what the API answers for the same request."""

from __future__ import annotations

import asyncio
from typing import TextIO

from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import create_engine, create_session_factory, transaction
from app.models import MessageStatus
from app.outbox import repository
from app.outbox.schemas import (
    MessageDetailOut,
    MessageOut,
    MessagePage,
    message_detail_out,
    message_out,
    message_page,
)
from app.outbox.service import MessageConflict, MessageNotFound, OperatorAction, end_message
from app.terminal import MAX_ROW_ID, NONE, aligned, moment, one_line, page_problem, print_json

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2


def end_command(
    *,
    settings: Settings,
    message_id: int,
    action: OperatorAction,
    stdout: TextIO,
    stderr: TextIO,
    clock: Clock | None = None,
    as_json: bool = False,
) -> int:
    """0 when the message is now cancelled or failed; 1 with the reason when it cannot be."""
    try:
        found = asyncio.run(_end(settings, message_id, action, clock or SystemClock()))
    except (MessageNotFound, MessageConflict) as exc:
        print(f"aftersale messages {action}: {exc}", file=stderr)
        return 1
    if as_json:
        print_json(found, stdout)
    else:
        print(f"message {message_id}: {found.status} ({found.reason})", file=stdout)
    return 0


async def _end(
    settings: Settings, message_id: int, action: OperatorAction, clock: Clock
) -> MessageOut:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            found = await end_message(
                session, message_id=message_id, action=action, now=clock.now()
            )
            return message_out(*found)
    finally:
        await engine.dispose()


def list_command(
    *,
    settings: Settings,
    email: str | None,
    order_id: str | None,
    rule: str | None,
    status: str | None,
    cursor: int | None,
    limit: int,
    as_json: bool,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """GET /api/v1/messages: newest first, one page; the next page is `--cursor N`."""
    problem = page_problem(
        option="--status",
        value=status,
        choices=[known.value for known in MessageStatus],
        limit=limit,
        cursor=cursor,
    )
    if problem is not None:
        print(f"aftersale messages list: {problem}", file=stderr)
        return EXIT_USAGE
    page = asyncio.run(
        _list(
            settings,
            email=email,
            order_id=order_id,
            rule=rule,
            status=status,
            cursor=cursor,
            limit=limit,
        )
    )
    if as_json:
        print_json(page, stdout)
        return EXIT_OK
    for line in format_page(page):
        print(line, file=stdout)
    return EXIT_OK


async def _list(
    settings: Settings,
    *,
    email: str | None,
    order_id: str | None,
    rule: str | None,
    status: str | None,
    cursor: int | None,
    limit: int,
) -> MessagePage:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            rows = await repository.list_messages(
                session,
                email=email,
                order_id=order_id,
                rule=rule,
                status=status,
                before_id=cursor,
                limit=limit,
            )
            return message_page(rows, limit=limit)
    finally:
        await engine.dispose()


def format_page(page: MessagePage) -> list[str]:
    if not page.items:
        return ["no messages"]
    lines = aligned(
        [
            ("id", "status", "rule/step", "recipient", "send_at", "sent_at", "reason"),
            *(
                (
                    str(item.id),
                    item.status,
                    f"{item.rule}/{item.step}",
                    item.email or NONE,
                    moment(item.send_at),
                    moment(item.sent_at),
                    item.reason or NONE,
                )
                for item in page.items
            ),
        ]
    )
    more = f"; next page: --cursor {page.next_cursor}" if page.next_cursor else ""
    return [*lines, f"{len(page.items)} message(s){more}"]


def show_command(
    *, settings: Settings, message_id: int, as_json: bool, stdout: TextIO, stderr: TextIO
) -> int:
    """One message and its history; 1 when there is no such message."""
    detail = asyncio.run(_show(settings, message_id)) if 1 <= message_id <= MAX_ROW_ID else None
    if detail is None:
        print(f"aftersale messages show: no message {message_id}", file=stderr)
        return EXIT_NOT_FOUND
    if as_json:
        print_json(detail, stdout)
        return EXIT_OK
    for line in format_detail(detail):
        print(line, file=stdout)
    return EXIT_OK


async def _show(settings: Settings, message_id: int) -> MessageDetailOut | None:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_session_factory(engine)) as session:
            history = await repository.message_history(session, message_id)
            return message_detail_out(history) if history else None
    finally:
        await engine.dispose()


def format_detail(detail: MessageDetailOut) -> list[str]:
    """A header of what the message is, then what happened to it in time order."""
    status = detail.status + (f" ({detail.reason})" if detail.reason else "")
    if detail.next_attempt_at is not None:
        status += f", next attempt {moment(detail.next_attempt_at)}"
    header = [
        (
            "rule",
            f"{detail.rule} step {detail.step} (version {detail.rule_version}), "
            f"template {detail.template}"
            + (f", variant {detail.variant}" if detail.variant else "")
            + f", {detail.kind}",
        ),
        ("status", f"{status}; changed {moment(detail.updated_at)}"),
        ("customer", (detail.email or "(erased)") + f", order {detail.order_id or NONE}"),
        ("recipient", detail.recipient or NONE),
        ("message-id", detail.smtp_message_id or NONE),
        ("last error", one_line(detail.last_error)),
    ]
    planned = (
        moment(detail.planned_at),
        "planned",
        f"send at {moment(detail.send_at)}"
        + (f", expires {moment(detail.expires_at)}" if detail.expires_at else ""),
    )
    events: list[tuple[str, str, str]] = []
    for attempt in detail.attempt_log:
        # The detail is usually the server's whole reply, its code first.
        code = str(attempt.smtp_code or "")
        reply = one_line(attempt.detail) if attempt.detail else code
        if code and not reply.startswith(code):
            reply = f"{code} {reply}"
        events.append(
            (
                moment(attempt.attempted_at),
                f"attempt {attempt.attempt}",
                attempt.outcome + (f": {reply}" if reply else ""),
            )
        )
    if detail.sent_at is not None:
        events.append((moment(detail.sent_at), "sent", f"to {detail.recipient or NONE}"))
    for event in detail.engagement:
        events.append(
            (
                moment(event.at),
                event.kind,
                f"{event.class_} ({event.reason})" + (f" {event.url}" if event.url else ""),
            )
        )
    for report in detail.feedback:
        events.append(
            (
                moment(report.received_at),
                report.kind,
                f"via {report.provider}"
                + (f": {one_line(report.detail)}" if report.detail else ""),
            )
        )
    for conversion in detail.conversions:
        revenue = " ".join(part for part in (conversion.revenue, conversion.currency) if part)
        events.append(
            (
                moment(conversion.converted_at),
                "conversion",
                f"order {conversion.order_id or NONE} via {conversion.via}"
                + (f", {revenue}" if revenue else ""),
            )
        )
    # Stable: at the same second, attempts before sent before opens. Planning comes first
    # whatever its time says (the row's own clock, which a test's frozen one may not match).
    events.sort(key=lambda event: event[0])
    events.insert(0, planned)
    return [
        f"message {detail.id}",
        *aligned([(f"  {name}", value) for name, value in header]),
        "",
        "timeline (UTC)",
        *aligned([(f"  {at}", what, text) for at, what, text in events]),
    ]
