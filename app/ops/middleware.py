"""The operations layer of every app: request ids and access log, security headers,
webhook counts, and the public links' rate limiter."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from app.config import Settings
from app.ops.logging import RequestIdMiddleware
from app.ops.metrics import WebhookMetricsMiddleware, init_webhook_series
from app.ops.ratelimit import ClientRateLimiter
from app.ops.security import SecurityHeadersMiddleware


def add_operations(app: FastAPI, settings: Settings, *, webhook_sources: Mapping[str, str]) -> None:
    """Wrap `app` in the operations middleware; call once, from `create_app`.

    `webhook_sources` (path -> source, `app.intake.registry.webhook_sources`) comes from the
    caller, so the operations layer, which domains import for metrics, imports no intake."""
    app.state.public_rate_limiter = (
        ClientRateLimiter(
            per_minute=settings.public_rate_per_minute, burst=settings.public_rate_burst
        )
        if settings.public_rate_per_minute > 0
        else None
    )
    init_webhook_series(webhook_sources)
    # The last added runs first: the request id wraps everything, so every answer and
    # every log line of a request carry it.
    app.add_middleware(WebhookMetricsMiddleware, sources=webhook_sources)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
