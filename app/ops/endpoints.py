"""Liveness and readiness for load balancers and orchestrators; metrics for Prometheus."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import RuntimeDep
from app.ops.metrics import CONTENT_TYPE, exposition
from app.ops.repository import OutboxSnapshot, outbox_snapshot, sender_pauses
from app.ops.security import MetricsAccess
from app.outbox.missing_rules import waiting_for_missing

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and rules are loaded (503 otherwise)")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    waiting: dict[str, int] | None = None
    try:
        async with runtime.session_factory() as session:
            await session.execute(text("SELECT 1"))
            paused = await sender_pauses(session, now=runtime.clock.now())
            waiting = await waiting_for_missing(session)
        checks["database"] = "ok"
        # Informational: intake stays ready while sending is paused; the messages wait.
        checks["sending"] = (
            {
                "status": "paused",
                "workers": [
                    {
                        "worker": pause.worker_id,
                        "until": pause.paused_until.isoformat(),
                        "failures": pause.failures,
                        "reason": pause.reason,
                    }
                    for pause in paused
                ],
            }
            if paused
            else {"status": "ok"}
        )
    except Exception as exc:  # any failure means "not ready"; say which
        checks["database"] = f"error: {type(exc).__name__}"
    rules = runtime.rules
    checks["rules"] = (
        {"status": "ok", "version": rules.current.version, "count": len(rules.current.rules)}
        if rules.loaded
        else {"status": "error", "errors": list(rules.errors)}
    )
    if rules.loaded and rules.errors:
        checks["rules"]["pending_errors"] = list(rules.errors)
    if waiting is not None:
        # Informational: held messages wait for their rule to come back (RULE_GRACE).
        checks["rules"]["waiting_for_missing_rules"] = sum(waiting.values())
    ready = checks["database"] == "ok" and rules.loaded
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (localhost, or the bearer AFTERSALE_METRICS_TOKEN)",
    dependencies=[MetricsAccess],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, 401: {}, 403: {}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    now = runtime.clock.now()
    snapshot: OutboxSnapshot | None = None
    try:
        async with runtime.session_factory() as session:
            snapshot = await outbox_snapshot(session, now=now)
    except Exception as exc:  # the process's own metrics are still worth a scrape
        log.warning("outbox gauges unavailable: %s", type(exc).__name__)
    return Response(exposition(snapshot, now=now), media_type=CONTENT_TYPE)
