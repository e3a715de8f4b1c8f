"""The platform registry: every webhook route comes from one entry per platform, and an entry
can carry product webhooks (the catalog's slot) without touching intake's code."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.intake import shopify, woocommerce
from app.intake.platform import MapContext, ProductIntake
from app.intake.registry import PLATFORMS, webhook_sources
from app.models import WebhookDelivery
from app.runtime import Runtime
from tests.intake.test_shopify import NEW_SECRET, SHOP, post_shopify
from tests.intake.test_woocommerce import HOST, SECRET, post_woo

# Shopify's documented products/create example (REST Admin API, Product resource).
SHOPIFY_PRODUCT: dict[str, Any] = {
    "id": 788032119674292922,
    "title": "Example T-Shirt",
    "body_html": None,
    "vendor": "Acme",
    "product_type": "Shirts",
    "created_at": None,
    "handle": "example-t-shirt",
    "updated_at": "2026-11-20T10:00:00-05:00",
    "published_at": "2026-11-20T10:00:00-05:00",
    "status": "active",
    "tags": "example, mens, t-shirt",
    "variants": [
        {
            "id": 642667041472713922,
            "product_id": 788032119674292922,
            "title": "Small",
            "price": "19.99",
            "sku": "example-shirt-s",
            "inventory_quantity": 75,
        }
    ],
    "images": [],
    "image": None,
}
# WooCommerce's product.created body (REST API v3 product), trimmed to the fields that matter.
WOO_PRODUCT: dict[str, Any] = {
    "id": 799,
    "name": "Кофе Эфиопия Иргачеффе",
    "slug": "coffee-ethiopia-yirgacheffe",
    "permalink": "https://coffee.example.ru/product/coffee-ethiopia-yirgacheffe/",
    "type": "simple",
    "status": "publish",
    "sku": "COFFEE-ETH-250",
    "price": "890",
    "stock_status": "instock",
    "categories": [{"id": 9, "name": "Coffee", "slug": "coffee"}],
    "images": [],
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "shopify_secrets": [f"{SHOP}={NEW_SECRET}"],
            "woocommerce_secrets": [f"{HOST}={SECRET}"],
        }
    )


def test_every_webhook_route_comes_from_the_registry(app: FastAPI) -> None:
    # The contract: these paths and sources, as before the registry.
    assert webhook_sources() == {
        "/webhooks/orders": "aftersale",
        "/webhooks/shopify": "shopify",
        "/webhooks/woocommerce": "woocommerce",
    }
    # Every shop webhook; mail providers' bounce webhooks are app/feedback's, not intake.
    served = {
        path
        for path in app.openapi()["paths"]
        if path.startswith("/webhooks/") and not path.startswith("/webhooks/mail/")
    }
    assert served == set(webhook_sources())
    assert PLATFORMS["shopify"].secret_settings == (
        "AFTERSALE_SHOPIFY_SECRETS",
        "AFTERSALE_SHOPIFY_SECRET",
    )
    assert PLATFORMS["woocommerce"].secret_settings[1] == "AFTERSALE_WOOCOMMERCE_SECRET"


@pytest.mark.parametrize(
    ("platform", "topic", "body"),
    [
        *((shopify, topic, SHOPIFY_PRODUCT) for topic in sorted(shopify.PRODUCT_TOPICS)),
        *((woocommerce, topic, WOO_PRODUCT) for topic in sorted(woocommerce.PRODUCT_TOPICS)),
    ],
)
async def test_product_topics_go_to_the_catalog(
    client: AsyncClient, platform: Any, topic: str, body: dict[str, Any]
) -> None:
    assert platform.PLATFORM.products is not None
    assert platform.PLATFORM.products.topics == platform.PRODUCT_TOPICS
    if platform is shopify:
        response = await post_shopify(client, topic, body)
    else:
        response = await post_woo(client, topic, body)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted", response.text


async def test_a_product_slot_takes_product_webhooks_once(
    client: AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a platform plugs in: a mapper and a store function, for its topics only."""
    stored: list[tuple[str, Any]] = []

    def to_product(payload: dict[str, Any], ctx: MapContext) -> Any:
        variants = payload.get("variants") or []
        return {"id": str(payload["id"]), "skus": [v["sku"] for v in variants], "by": ctx.event_id}

    async def apply(
        session: AsyncSession, *, shop: str, change: Any, now: datetime, **_: Any
    ) -> int:
        # In the delivery's transaction: the delivery row is already there.
        assert (await session.execute(select(WebhookDelivery.id))).first() is not None
        stored.append((shop, change))
        return 0

    products = ProductIntake(topics=shopify.PRODUCT_TOPICS, mapper=to_product, apply=apply)
    monkeypatch.setattr(
        shopify, "PLATFORM", dataclasses.replace(shopify.PLATFORM, products=products)
    )

    response = await post_shopify(client, "products/create", SHOPIFY_PRODUCT, event_id="ev-p1")
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert stored == [
        (SHOP, {"id": "788032119674292922", "skus": ["example-shirt-s"], "by": "ev-p1"})
    ]
    again = await post_shopify(client, "products/create", SHOPIFY_PRODUCT, event_id="ev-p1")
    assert again.json()["status"] == "duplicate"
    assert len(stored) == 1
    # Order topics still go their own way.
    assert (
        "orders/create" in shopify.PLATFORM.topics and "products/create" in shopify.PLATFORM.topics
    )
