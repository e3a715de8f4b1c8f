"""The FastAPI application. `create_app()` wires routers; the lifespan owns the runtime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI

from app import version
from app.api.deps import RefuseNulInUrl
from app.api.errors import add_validation_errors
from app.catalog.endpoints import router as catalog_router
from app.config import Settings
from app.console.routes import router as console_router
from app.coupons.endpoints import router as coupons_router
from app.customers.endpoints import privacy_router
from app.customers.endpoints import router as customers_router
from app.dashboard.endpoints import router as dashboard_router
from app.dev.endpoints import router as dev_router
from app.feedback.endpoints import router as feedback_router
from app.feedback.inbound import inbound_listener
from app.home.endpoints import docs_router
from app.home.endpoints import router as home_router
from app.intake.endpoints import router as intake_router
from app.intake.registry import webhook_router, webhook_sources
from app.ops.endpoints import router as ops_router
from app.ops.middleware import add_operations
from app.ops.security import RATE_LIMITED, PublicRateLimit
from app.outbox.endpoints import router as outbox_router
from app.preview.endpoints import router as preview_router
from app.preview.lint import TemplateCheck
from app.reviews.endpoints import api_router as reviews_api_router
from app.reviews.endpoints import router as reviews_router
from app.rules_api.endpoints import router as rules_router
from app.runtime import Runtime
from app.stats.endpoints import router as stats_router
from app.suppressions.endpoints import router as suppressions_router
from app.survey.endpoints import api_router as survey_api_router
from app.survey.endpoints import router as survey_router
from app.tracking.endpoints import router as tracking_router
from app.unsubscribe.endpoints import router as unsubscribe_router
from app.worker import Worker

log = logging.getLogger(__name__)

Role = Literal["api", "worker", "all"]


def create_app(
    settings: Settings | None = None, *, role: Role = "api", runtime: Runtime | None = None
) -> FastAPI:
    """An API process; with role `all` it also runs the worker in the same event loop."""
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app_runtime = runtime or Runtime.create(
            settings, templates=TemplateCheck.for_settings(settings)
        )
        app.state.runtime = app_runtime
        worker = Worker(app_runtime) if role == "all" else None
        if worker is not None:
            await worker.start()
        # Bounces and complaints by SMTP, when INBOUND_SMTP_PORT is set (docs/deliverability.md).
        inbound = inbound_listener(app_runtime) if role == "all" else None
        if inbound is not None:
            await inbound.start()
        watcher = asyncio.create_task(
            app_runtime.rules.watch(interval=app_runtime.settings.rules_poll_interval)
        )
        try:
            yield
        finally:
            watcher.cancel()
            if inbound is not None:
                await inbound.stop()
            if worker is not None:
                await worker.stop()
            if runtime is None:  # a runtime handed in belongs to the caller
                await app_runtime.close()

    app = FastAPI(
        title="aftersale",
        version=version(),
        summary="Post-sale lifecycle email: order webhooks in, timely personal email out.",
        lifespan=lifespan,
        dependencies=[RefuseNulInUrl],
        # Our own /docs (app/home/endpoints.py) serves Swagger UI from a package, not a CDN;
        # ReDoc would need one.
        docs_url=None,
        redoc_url=None,
    )
    add_validation_errors(app)
    app.include_router(home_router)
    if settings.api_docs:
        app.include_router(docs_router)
    app.include_router(ops_router)
    app.include_router(webhook_router())
    app.include_router(intake_router)
    app.include_router(outbox_router)
    app.include_router(preview_router)
    app.include_router(rules_router)
    app.include_router(customers_router)
    app.include_router(privacy_router)
    app.include_router(suppressions_router)
    app.include_router(stats_router)
    app.include_router(dashboard_router)
    app.include_router(console_router)
    app.include_router(coupons_router)
    app.include_router(catalog_router)
    app.include_router(feedback_router)
    app.include_router(survey_api_router)
    app.include_router(reviews_api_router)
    # The public links: no credential but the token, so a per-client rate limit.
    app.include_router(unsubscribe_router, dependencies=[PublicRateLimit], responses=RATE_LIMITED)
    app.include_router(tracking_router, dependencies=[PublicRateLimit], responses=RATE_LIMITED)
    app.include_router(survey_router, dependencies=[PublicRateLimit], responses=RATE_LIMITED)
    app.include_router(reviews_router, dependencies=[PublicRateLimit], responses=RATE_LIMITED)
    if settings.is_development:
        app.include_router(dev_router)
    add_operations(app, settings, webhook_sources=webhook_sources())
    return app
