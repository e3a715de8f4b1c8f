"""`/dashboard/intake`: webhook deliveries that could not be mapped; each one's body and
error, and a replay with the current code and rules (as `aftersale intake replay ID`)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from app.api.deps import MAX_ROW_ID, RuntimeDep, SessionDep
from app.console.access import Visit, forbidden, html, posted_form, see_other, to_login, visit
from app.console.render import render
from app.intake import replay, repository
from app.ops.repository import queue_depth

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE_SIZE = 50
HERE = "/dashboard/intake"
FailureId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def _missing(seen: Visit) -> HTMLResponse:
    body = render(
        "intake_failure.html",
        visit=seen,
        here=HERE,
        failure=None,
        delivery=None,
        body=None,
        notice=None,
    )
    return html(body, status.HTTP_404_NOT_FOUND)


@router.get("/intake", response_class=HTMLResponse)
async def failures_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    state: Literal["open", "replayed", ""] = "open",
    source: Literal["shopify", "woocommerce", "aftersale", ""] = "",
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    rows = await repository.list_failures(
        db,
        resolved=None if not state else state == "replayed",
        source=source or None,
        before_id=cursor,
        limit=PAGE_SIZE,
    )
    next_cursor = rows[-1][0].id if len(rows) == PAGE_SIZE else None
    queued, oldest = await queue_depth(db)
    waited = None if oldest is None else max(0, int((runtime.clock.now() - oldest).total_seconds()))
    body = render(
        "intake.html",
        queued=queued,
        waited=waited,
        visit=seen,
        here=HERE,
        rows=rows,
        state=state,
        source=source,
        next_cursor=next_cursor,
    )
    return html(body)


def _readable(raw: str | None) -> str | None:
    """The stored body as sent, indented when it is JSON; None once erased or aged out."""
    if not raw:
        return None
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


@router.get("/intake/{failure_id}", response_class=HTMLResponse)
async def failure_page(
    request: Request,
    runtime: RuntimeDep,
    db: SessionDep,
    failure_id: FailureId,
    replayed: Literal["1"] | None = None,
) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    found = await repository.failure_with_delivery(db, failure_id, lock=False)
    if found is None:
        return _missing(seen)
    failure, delivery = found
    notice = None
    if replayed:
        notice = (
            "Replayed: it went through."
            if failure.replayed_at is not None
            else "Replayed: it still fails. The error below is the new one."
        )
    body = render(
        "intake_failure.html",
        visit=seen,
        here=HERE,
        failure=failure,
        delivery=delivery,
        body=_readable(delivery.body),
        notice=notice,
    )
    return html(body)


@router.post("/intake/{failure_id}/replay", response_class=HTMLResponse)
async def replay_one(
    request: Request, runtime: RuntimeDep, db: SessionDep, failure_id: FailureId
) -> Response:
    form = await posted_form(request, runtime)
    seen = visit(request, runtime)
    if form is None or seen is None:
        return forbidden()
    outcome = await replay.replay_failure(
        db,
        failure_id=failure_id,
        rules=runtime.rules.current,
        settings=runtime.settings,
        now=seen.now,
    )
    if outcome is None:
        return _missing(seen)
    return see_other(f"{HERE}/{failure_id}?replayed=1")
