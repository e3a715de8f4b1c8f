"""Every platform intake takes webhooks from, by source.

A new platform is one module that builds a `Platform` (route, signature and secrets,
mappers; see `platform.py`), its secret settings in `app/config.py`, and one line here.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.intake import aftersale, shopify, woocommerce
from app.intake.platform import Platform

PLATFORMS: dict[str, Platform] = {
    platform.source: platform
    for platform in (aftersale.PLATFORM, shopify.PLATFORM, woocommerce.PLATFORM)
}


def platform_of(source: str) -> Platform | None:
    return PLATFORMS.get(source)


def webhook_sources() -> dict[str, str]:
    """Route path -> source, for the webhook metrics."""
    return {platform.path: platform.source for platform in PLATFORMS.values()}


def webhook_router() -> APIRouter:
    """Every platform's webhook route."""
    router = APIRouter()
    for platform in PLATFORMS.values():
        router.include_router(platform.router)
    return router
