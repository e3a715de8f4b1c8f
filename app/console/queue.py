"""`/dashboard/queue`: what is due now, what waits per day ahead, what is held and why."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.deps import RuntimeDep, SessionDep
from app.console.access import html, to_login, visit
from app.console.render import render
from app.outbox.queue import DAYS_AHEAD, FAILED_SPAN, load_queue

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("/queue", response_class=HTMLResponse)
async def queue_page(request: Request, runtime: RuntimeDep, db: SessionDep) -> Response:
    seen = visit(request, runtime)
    if seen is None:
        return to_login()
    queue = await load_queue(db, now=seen.now)
    return html(
        render(
            "queue.html",
            visit=seen,
            here="/dashboard/queue",
            queue=queue,
            days_ahead=DAYS_AHEAD,
            failed_days=FAILED_SPAN.days,
        )
    )
