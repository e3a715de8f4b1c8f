"""`/dashboard/messages`: find messages; one message's facts, timeline and rendered email;
cancel it or send it now.

The search is the API's (`GET /api/v1/messages`, `app/outbox/repository.list_messages`),
newest first and paged by id. The rendered email is its own page, shown in a sandboxed
frame under a CSP of its own: the email's HTML runs nothing and reaches no console page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import MAX_ROW_ID, RuntimeDep, SessionDep
from app.console.access import (
    CSP,
    Visit,
    forbidden,
    html,
    posted_form,
    see_other,
    to_login,
    visit,
)
from app.console.render import render
from app.models import Message, MessageStatus
from app.outbox import repository
from app.outbox.history import load_timeline
from app.outbox.rendering import CannotRender, OperatorRender, render_for_operator
from app.outbox.service import MessageConflict, MessageNotFound, end_message, send_now
from app.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(prefix="/dashboard/messages", include_in_schema=False)

PAGE_SIZE = 50
HERE = "/dashboard/messages"
MessageId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

# The message page frames its rendered email, from this origin only.
PAGE_CSP = CSP + "; frame-src 'self'"
# The rendered email: nothing runs, no form goes anywhere, only a console page may frame it.
# Pictures load from wherever the email takes them (as in a mail client), nothing else does.
EMAIL_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox"
)
# What a post did, by the `done` the page is sent back with.
NOTICES = {
    "cancelled": "Cancelled: the message will not be sent.",
    "sent-now": "Due now: the worker's next run takes it.",
}


@dataclass(frozen=True, slots=True)
class Search:
    """The search form's fields as given (to show them back), and what they filter by."""

    email: str = ""
    order: str = ""
    rule: str = ""
    status: str = ""
    since: str = ""  # yyyy-mm-dd, UTC day, inclusive
    until: str = ""  # yyyy-mm-dd, UTC day, inclusive

    def query(self, **more: str | int) -> str:
        fields = {
            "email": self.email,
            "order": self.order,
            "rule": self.rule,
            "status": self.status,
            "from": self.since,
            "to": self.until,
        }
        return urlencode({k: v for k, v in {**fields, **more}.items() if v != ""})


def _day(value: str, field: str) -> date | str:
    """The date, or the error to show."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        return f"{field}: {value!r} is not a date (yyyy-mm-dd)"


@router.get("", response_class=HTMLResponse)
async def messages_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    email: str = "",
    order: str = "",
    rule: str = "",
    status_: Annotated[str, Query(alias="status")] = "",
    from_: Annotated[str, Query(alias="from")] = "",
    to: str = "",
    cursor: str = "",
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    search = Search(
        email=email.strip()[:320],
        order=order.strip()[:64],
        rule=rule.strip()[:128],
        status=status_.strip(),
        since=from_.strip(),
        until=to.strip(),
    )
    errors: list[str] = []
    statuses = [value.value for value in MessageStatus]
    if search.status and search.status not in statuses:
        errors.append(f"status: {search.status!r} is not one of {', '.join(statuses)}")
    first_day = last_day = None
    if search.since:
        found = _day(search.since, "from")
        if isinstance(found, str):
            errors.append(found)
        else:
            first_day = found
    if search.until:
        found = _day(search.until, "to")
        if isinstance(found, str):
            errors.append(found)
        else:
            last_day = found
    if first_day is not None and last_day is not None and last_day < first_day:
        errors.append("from: the first day comes after the last (to)")
    before = None
    if cursor:
        if cursor.isdigit() and 1 <= int(cursor) <= MAX_ROW_ID:
            before = int(cursor)
        else:
            errors.append(f"cursor: {cursor!r} is not a message id")
    rows: list[tuple[Message, str | None, str | None]] = []
    if not errors:
        rows = await repository.list_messages(
            db,
            email=search.email or None,
            order_id=search.order or None,
            rule=search.rule or None,
            status=search.status or None,
            before_id=before,
            limit=PAGE_SIZE,
            first_day=first_day,
            last_day=last_day,
        )
    rules = sorted(runtime.rules.current.sending_rule_ids)
    if search.rule and search.rule not in rules:
        rules.append(search.rule)  # a removed rule's messages can still be found
    older = search.query(cursor=rows[-1][0].id) if len(rows) == PAGE_SIZE else None
    body = render(
        "messages.html",
        visit=seen,
        here=HERE,
        search=search,
        rows=rows,
        rules=rules,
        statuses=statuses,
        errors=errors,
        paged=before is not None,
        first_page=search.query(),
        older=older,
    )
    if errors:
        return html(body, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return html(body)


@router.get("/{message_id}", response_class=HTMLResponse)
async def message_page(
    request: Request, runtime: RuntimeDep, db: SessionDep, message_id: MessageId, done: str = ""
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    return await _message(seen, runtime, db, message_id, notice=NOTICES.get(done))


async def _message(
    seen: Visit,
    runtime: RuntimeDep,
    db: SessionDep,
    message_id: int,
    *,
    notice: str | None = None,
    refusal: str | None = None,
) -> Response:
    history = await load_timeline(db, message_id)
    if history is None:
        return html(
            render("message_missing.html", visit=seen, here=HERE, message_id=message_id),
            status.HTTP_404_NOT_FOUND,
        )
    rendered, unrenderable = None, None
    try:
        rendered = await _rendered(db, runtime, seen, message_id)
    except CannotRender as exc:
        unrenderable = str(exc)
    message = history.message
    body = render(
        "message.html",
        visit=seen,
        here=HERE,
        history=history,
        message=message,
        rendered=rendered,
        unrenderable=unrenderable,
        notice=notice,
        refusal=refusal,
        can_cancel=message.status
        in (MessageStatus.SCHEDULED, MessageStatus.PAUSED, MessageStatus.SENDING),
        can_send_now=message.status == MessageStatus.SCHEDULED,
    )
    code = status.HTTP_409_CONFLICT if refusal else status.HTTP_200_OK
    response = html(body, code)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


async def _rendered(
    db: AsyncSession, runtime: Runtime, seen: Visit, message_id: int
) -> OperatorRender | None:
    """The message as it would be sent now, untracked (raises CannotRender)."""
    return await render_for_operator(
        db,
        settings=runtime.settings,
        rules=runtime.rules.current,
        message_id=message_id,
        now=seen.now,
    )


@router.get("/{message_id}/email.html", response_class=HTMLResponse)
async def message_email(
    request: Request, runtime: RuntimeDep, db: SessionDep, message_id: MessageId
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    try:
        rendered = await _rendered(db, runtime, seen, message_id)
    except CannotRender as exc:
        return _email(
            render("email_unrenderable.html", reason=str(exc)),
            status.HTTP_409_CONFLICT,
        )
    if rendered is None:
        return _email(
            render("email_unrenderable.html", reason="there is no such message"),
            status.HTTP_404_NOT_FOUND,
        )
    return _email(rendered.html)


def _email(body: str, status_code: int = status.HTTP_200_OK) -> Response:
    """The email's own page: its CSP, and framed by this origin only (older browsers too)."""
    response = html(body, status_code)
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@router.post("/{message_id}/cancel", response_class=HTMLResponse)
async def cancel(
    request: Request, runtime: RuntimeDep, db: SessionDep, message_id: MessageId
) -> Response:
    if await posted_form(request, runtime) is None:
        return forbidden()
    seen = visit(request, runtime)
    assert seen is not None  # posted_form checked the sign-in
    try:
        await end_message(db, message_id=message_id, action="cancel", now=seen.now)
    except MessageNotFound:
        return await _message(seen, runtime, db, message_id)  # its 404 page
    except MessageConflict as exc:
        return await _message(seen, runtime, db, message_id, refusal=f"Not cancelled: {exc}.")
    return see_other(f"{HERE}/{message_id}?done=cancelled")


@router.post("/{message_id}/send-now", response_class=HTMLResponse)
async def send_message_now(
    request: Request, runtime: RuntimeDep, db: SessionDep, message_id: MessageId
) -> Response:
    if await posted_form(request, runtime) is None:
        return forbidden()
    seen = visit(request, runtime)
    assert seen is not None
    try:
        await send_now(db, message_id=message_id, now=seen.now)
    except MessageNotFound:
        return await _message(seen, runtime, db, message_id)
    except MessageConflict as exc:
        return await _message(seen, runtime, db, message_id, refusal=f"Not sent now: {exc}.")
    log.info("message made due now from the console", extra={"message_id": message_id})
    return see_other(f"{HERE}/{message_id}?done=sent-now")
