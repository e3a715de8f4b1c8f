"""The operations layer of every app: request ids and access log, security headers,
webhook counts, and the public links' rate limiter."""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings
from app.intake.registry import webhook_sources
from app.ops.logging import RequestIdMiddleware
from app.ops.metrics import WebhookMetricsMiddleware, init_webhook_series
from app.ops.ratelimit import ClientRateLimiter
from app.ops.security import DOCS_CSP, SecurityHeadersMiddleware

WEBHOOK_SOURCES = webhook_sources()


def add_operations(app: FastAPI, settings: Settings) -> None:
    """Wrap `app` in the operations middleware; call once, from `create_app`."""
    app.state.public_rate_limiter = (
        ClientRateLimiter(
            per_minute=settings.public_rate_per_minute, burst=settings.public_rate_burst
        )
        if settings.public_rate_per_minute > 0
        else None
    )
    init_webhook_series(WEBHOOK_SOURCES)
    docs_paths = (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    # The last added runs first: the request id wraps everything, so every answer and
    # every log line of a request carry it.
    app.add_middleware(WebhookMetricsMiddleware, sources=WEBHOOK_SOURCES)
    app.add_middleware(
        SecurityHeadersMiddleware,
        csp_by_path={path: DOCS_CSP for path in docs_paths if path is not None},
    )
    app.add_middleware(RequestIdMiddleware)
