"""`/dashboard/suppressions`: search the list, take an address off, undo many at once.

A bulk undo (say, the hard bounces a wrong SMTP setup caused last Tuesday) first shows what
it would take off, per reason, and takes it off only when that is confirmed. Every removal
is recorded with the source `console` and the note given (app/suppressions/service.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ROW_ID, RuntimeDep, SessionDep
from app.console.access import Visit, forbidden, html, posted_form, see_other, to_login, visit
from app.console.render import render
from app.models import SuppressionReason
from app.suppressions import repository, service

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE_SIZE = 50
HERE = "/dashboard/suppressions"
_REASONS = [reason.value for reason in SuppressionReason]


def _page(visit: Visit, **context: object) -> str:
    defaults: dict[str, object] = {
        "q": "",
        "reason": "",
        "rows": [],
        "next_cursor": None,
        "removals": [],
        "notice": None,
        "error": None,
        "bulk": {"reason": "", "since": "", "until": "", "note": ""},
        "preview": None,
    }
    return render(
        "suppressions.html", visit=visit, here=HERE, reasons=_REASONS, **(defaults | context)
    )


async def _listing(db: SessionDep, *, q: str, reason: str, cursor: int | None) -> dict[str, object]:
    rows = await repository.list_suppressions(
        db,
        email=None,
        part=q.strip() or None,
        reason=reason or None,
        before_id=cursor,
        limit=PAGE_SIZE,
    )
    removals = await repository.list_removals(db, email=None, before_id=None, limit=10)
    return {
        "rows": rows,
        "next_cursor": rows[-1].id if len(rows) == PAGE_SIZE else None,
        "removals": removals,
    }


@router.get("/suppressions", response_class=HTMLResponse)
async def suppressions_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    q: Annotated[str, Query(max_length=320)] = "",
    reason: str = "",
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    removed: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    if reason and reason not in _REASONS:
        body = _page(seen, q=q, error=f"No reason “{reason}”: choose one from the list.")
        return html(body, status.HTTP_422_UNPROCESSABLE_CONTENT)
    notice = None
    if removed is not None:
        notice = f"{removed} address{'es' if removed != 1 else ''} taken off the list."
    listing = await _listing(db, q=q, reason=reason, cursor=cursor)
    return html(_page(seen, q=q, reason=reason, notice=notice, **listing))


@router.post("/suppressions/remove", response_class=HTMLResponse)
async def remove_one(request: Request, runtime: RuntimeDep, db: SessionDep) -> Response:
    form = await posted_form(request, runtime)
    if form is None:
        return forbidden()
    removed = await service.remove_address(
        db,
        email=form.get("email", "").strip(),
        source=service.RemovalSource.CONSOLE,
        note=form.get("note", "").strip()[:2000] or None,
        now=runtime.clock.now(),
    )
    return see_other(f"{HERE}?removed={0 if removed is None else 1}")


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"“{field}” is not a date (YYYY-MM-DD).") from None


@router.post("/suppressions/bulk", response_class=HTMLResponse)
async def remove_many(request: Request, runtime: RuntimeDep, db: SessionDep) -> Response:
    """Without `confirm`: what would go, and a button to confirm. With it: gone."""
    form = await posted_form(request, runtime)
    seen = visit(request, runtime)
    if form is None or seen is None:
        return forbidden()
    bulk = {field: form.get(field, "").strip() for field in ("reason", "since", "until", "note")}
    error = None
    since = until = None
    if bulk["reason"] not in _REASONS:
        error = "Choose the reason of the entries to take off."
    else:
        try:
            first, last = _day(bulk["since"], "Made from"), _day(bulk["until"], "Made until")
        except ValueError as exc:
            error = str(exc)
        else:
            since = None if first is None else datetime.combine(first, time(), UTC)
            # The last day is included: the entries made before the next midnight.
            until = None if last is None else datetime.combine(last + timedelta(1), time(), UTC)
            if since is not None and until is not None and until <= since:
                error = "“Made until” is before “made from”."
    if error is not None:
        listing = await _listing(db, q="", reason="", cursor=None)
        body = _page(seen, bulk=bulk, error=error, **listing)
        return html(body, status.HTTP_422_UNPROCESSABLE_CONTENT)
    report = await service.remove_matching(
        db,
        reason=bulk["reason"],
        since=since,
        until=until,
        source=service.RemovalSource.CONSOLE,
        note=bulk["note"][:2000] or None,
        now=runtime.clock.now(),
        dry_run=form.get("confirm") != "yes",
    )
    if not report.dry_run:
        return see_other(f"{HERE}?removed={report.removed}")
    listing = await _listing(db, q="", reason=bulk["reason"], cursor=None)
    return html(_page(seen, reason=bulk["reason"], bulk=bulk, preview=report, **listing))
