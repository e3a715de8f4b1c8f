"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and rules are loaded (503 otherwise)")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
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
    ready = checks["database"] == "ok" and rules.loaded
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
