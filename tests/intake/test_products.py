"""Product webhooks through the ASGI app into the catalog, and order items whose product
arrives after them: linked then, planned once by the rules that now match.

Payloads are the platforms' documented ones (tests/catalog/payloads, tests/intake/payloads);
Shopify line items carry no product type (it lives on the product), as in real orders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from app.config import ROOT, Settings
from app.models import Message, OrderItem, Product, WebhookDelivery
from app.rules.source import RulesSource
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.intake.test_shopify import NEW_SECRET, SHOP, post_shopify
from tests.intake.test_woocommerce import HOST, SECRET, post_woo
from tests.outbox.conftest import use_rules

CATALOG = Path(__file__).parents[1] / "catalog" / "payloads"
ORDERS = Path(__file__).parent / "payloads"

# Shopify's taxonomy full name, WooCommerce's category slug and the product's vendor: what
# the order webhooks themselves never say.
RULES = """
rules:
  - id: diapers-restock
    when:
      event: order.created
      items: {category: ["Baby & Toddler > Diapering"]}
    send: {after: 1w}
    template: diapers-restock
  - id: desk-care
    when:
      event: order.created
      items: {category: [kinderzimmer]}
    send: {after: 2w}
    template: kids-furniture-care
  - id: lillydoo-fans
    when:
      event: order.created
      items: {vendor: [LILLYDOO], product_type: [windeln]}
    send: {after: 3w}
    template: diapers-restock
"""


def load(folder: Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / name).read_text())
    return loaded


def shopify_order() -> dict[str, Any]:
    """Anna's order #1042, its first line the diapers of `shopify_product_create.json`."""
    order = load(ORDERS, "shopify_order_create.json")
    for line in order["line_items"]:
        line.pop("product_type", None)  # real line items have none
    order["line_items"][0].update(
        product_id=788032119674292922,
        variant_id=642667041472713922,
        sku="DIAPER-4-44",
        name="Öko-Windeln Größe 4 - 44 Stück",
    )
    return order


def woo_order() -> dict[str, Any]:
    """Maria's order, its first line the desk variation of `woocommerce_variation.json`."""
    order = load(ORDERS, "woocommerce_order.json")
    order["line_items"][0].update(
        product_id=7301, variation_id=7303, sku="DESK-LERNFIX-EICHE", name="Kinderschreibtisch"
    )
    return order


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "shopify_secrets": [f"{SHOP}={NEW_SECRET}"],
            "woocommerce_secrets": [f"{HOST}={SECRET}"],
        }
    )


@pytest.fixture
def rules(runtime: Runtime, settings: Settings) -> None:
    use_rules(runtime, settings.rules_dir, RULES)


async def planned(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(Message.rule_id, Message.status).order_by(Message.id))
        return [(rule, str(status)) for rule, status in rows]


async def items(runtime: Runtime) -> list[tuple[str | None, int | None, int | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(
                OrderItem.sku, OrderItem.catalog_product_id, OrderItem.catalog_variant_id
            ).order_by(OrderItem.order_id, OrderItem.position)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def unknown(client: AsyncClient, api: Api) -> list[str]:
    response = await client.get("/api/v1/catalog/unknown", headers=api.headers)
    assert response.status_code == 200, response.text
    return [entry["sku"] for entry in response.json()["skus"]]


@pytest.mark.usefixtures("rules")
async def test_a_shopify_product_after_its_order_plans_the_category_rule_once(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    order = await post_shopify(client, "orders/create", shopify_order(), event_id="ev-order")
    # Without the product nothing says these are diapers: only the thank-you.
    assert order.json()["messages_planned"] == 1, order.text
    assert await planned(runtime) == [("thank-you", "scheduled")]
    assert "DIAPER-4-44" in await unknown(client, api)

    product = load(CATALOG, "shopify_product_create.json")
    arrived = await post_shopify(client, "products/create", product, event_id="ev-product")
    assert arrived.status_code == 200, arrived.text
    assert arrived.json()["status"] == "accepted"
    # Its taxonomy category, its vendor and type: both rules now match, each plans once.
    assert arrived.json()["messages_planned"] == 2
    assert await planned(runtime) == [
        ("thank-you", "scheduled"),
        ("diapers-restock", "scheduled"),
        ("lillydoo-fans", "scheduled"),
    ]
    async with runtime.session_factory() as session:
        diapers = (await session.execute(select(Product))).scalar_one()
    linked = await items(runtime)
    assert linked[0][:2] == ("DIAPER-4-44", diapers.id) and linked[0][2] is not None
    assert [row[1] for row in linked[1:]] == [None, None]  # the others' products never came
    assert "DIAPER-4-44" not in await unknown(client, api)
    assert {"WIPES-72", "TEETHER-MINT"} <= set(await unknown(client, api))

    # Replays of either webhook, and a later update of the product, plan nothing more.
    again = await post_shopify(client, "products/create", product, event_id="ev-product")
    assert again.json()["status"] == "duplicate"
    updated = await post_shopify(
        client, "products/update", product | {"updated_at": "2026-11-19T09:00:00-05:00"}
    )
    assert (updated.json()["status"], updated.json()["messages_planned"]) == ("accepted", 0)
    repeat = await post_shopify(client, "orders/create", shopify_order(), event_id="ev-order")
    assert repeat.json()["status"] == "duplicate"
    assert len(await planned(runtime)) == 3


@pytest.mark.usefixtures("rules")
async def test_an_order_after_its_product_is_planned_at_intake(
    client: AsyncClient, runtime: Runtime
) -> None:
    product = load(CATALOG, "shopify_product_create.json")
    assert (await post_shopify(client, "products/create", product)).json()["status"] == "accepted"
    order = await post_shopify(client, "orders/create", shopify_order())
    assert order.json()["messages_planned"] == 3, order.text
    assert sorted(rule for rule, _ in await planned(runtime)) == [
        "diapers-restock",
        "lillydoo-fans",
        "thank-you",
    ]


@pytest.mark.usefixtures("rules")
async def test_a_woocommerce_variation_then_its_product_after_the_order(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    order = await post_woo(client, "order.created", woo_order())
    assert order.json()["messages_planned"] == 1, order.text
    # The variation first (WooCommerce sends it apart): the item is linked to the
    # placeholder product it makes, which has no category yet.
    variation = await post_woo(
        client, "product.created", load(CATALOG, "woocommerce_variation.json")
    )
    assert (variation.json()["status"], variation.json()["messages_planned"]) == ("accepted", 0)
    assert (await items(runtime))[0][1] is not None
    assert "DESK-LERNFIX-EICHE" not in await unknown(client, api)
    # The product's own delivery fills the placeholder in: its categories changed what rules
    # see, so the recent order linked to it is planned again.
    product = await post_woo(
        client, "product.updated", load(CATALOG, "woocommerce_product_variable.json")
    )
    assert product.json()["messages_planned"] == 1, product.text
    assert [rule for rule, _ in await planned(runtime)] == ["thank-you", "desk-care"]
    # A later update that changes nothing rules look at (stock, price) plans nothing.
    restocked = load(CATALOG, "woocommerce_product_variable.json") | {
        "date_modified_gmt": "2026-11-21T08:00:00",
        "stock_status": "outofstock",
    }
    again = await post_woo(client, "product.updated", restocked)
    assert again.json()["messages_planned"] == 0


@pytest.mark.usefixtures("rules")
async def test_a_woocommerce_product_after_the_order_plans_by_its_category_slug(
    client: AsyncClient, runtime: Runtime
) -> None:
    order = await post_woo(client, "order.created", woo_order())
    assert order.json()["messages_planned"] == 1, order.text
    product = await post_woo(
        client, "product.created", load(CATALOG, "woocommerce_product_variable.json")
    )
    assert product.json()["messages_planned"] == 1, product.text
    assert [rule for rule, _ in await planned(runtime)] == ["thank-you", "desk-care"]
    replay = await post_woo(
        client, "product.updated", load(CATALOG, "woocommerce_product_variable.json")
    )
    assert replay.json()["messages_planned"] == 0


@pytest.mark.usefixtures("rules")
async def test_a_product_later_than_catalog_late_days_links_nothing(
    client: AsyncClient, runtime: Runtime, clock: FrozenClock, api: Api
) -> None:
    await post_shopify(client, "orders/create", shopify_order())
    clock.advance(days=2, hours=1)  # the order was placed 2 days and 1 hour ago
    arrived = await post_shopify(
        client, "products/create", load(CATALOG, "shopify_product_create.json")
    )
    assert arrived.json()["messages_planned"] == 0
    assert [row[1] for row in await items(runtime)] == [None, None, None]
    assert await planned(runtime) == [("thank-you", "scheduled")]
    # Not linked, but no longer unknown: the catalog has it now.
    assert "DIAPER-4-44" not in await unknown(client, api)


@pytest.mark.usefixtures("rules")
async def test_put_products_matches_waiting_items_too(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    await post_shopify(client, "orders/create", shopify_order())
    body = {
        "shop": SHOP,
        "platform": "shopify",
        "products": [
            {
                "id": "788032119674292922",
                "title": "Öko-Windeln Größe 4",
                "categories": ["Baby & Toddler > Diapering > Diapers"],
                "variants": [{"id": "642667041472713922", "sku": "DIAPER-4-44", "price": "13.90"}],
            }
        ],
    }
    response = await client.put("/api/v1/products", json=body, headers=api.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "added": 1,
        "updated": 0,
        "unchanged": 0,
        "stale": 0,
        "items_matched": 1,
        "messages_planned": 1,
    }
    again = await client.put("/api/v1/products", json=body, headers=api.headers)
    assert (again.json()["items_matched"], again.json()["messages_planned"]) == (0, 0)
    assert [rule for rule, _ in await planned(runtime)] == ["thank-you", "diapers-restock"]


async def test_a_bad_product_payload_is_kept_as_an_intake_failure(
    client: AsyncClient, runtime: Runtime
) -> None:
    product = load(CATALOG, "shopify_product_create.json")
    product["variants"][0]["price"] = "vierzehn"
    response = await post_shopify(client, "products/create", product)
    assert response.status_code == 200
    assert response.json()["status"] == "unmapped"
    assert "price" in response.json()["reason"]
    async with runtime.session_factory() as session:
        assert (await session.execute(select(func.count()).select_from(Product))).scalar() == 0
        deliveries = (await session.execute(select(WebhookDelivery.event_type))).scalars().all()
    assert deliveries == ["products/create"]
    unsigned = await post_shopify(client, "products/create", product, secret="wrong")
    assert unsigned.status_code == 401


async def test_the_shipped_rules_fire_on_shopify_taxonomy_categories(
    client: AsyncClient, runtime: Runtime
) -> None:
    runtime.rules = RulesSource(ROOT / "rules")
    assert runtime.rules.reload(), runtime.rules.errors
    # A SKU the shipped rule's DIAPER-* glob does not catch: only the category can.
    order = shopify_order()
    order["line_items"][0]["sku"] = "LILLYDOO-W4-44"
    product = load(CATALOG, "shopify_product_create.json")
    product["variants"][0]["sku"] = "LILLYDOO-W4-44"
    await post_shopify(client, "orders/create", order)
    # The order made the customer: the shipped welcome (if: {orders: 0}) is not for them.
    assert [rule for rule, _ in await planned(runtime)] == ["thank-you"]
    # "Baby & Toddler > Diapering > Diapers", as Shopify's API version 2024-10 sends it.
    arrived = await post_shopify(client, "products/create", product)
    assert arrived.json()["messages_planned"] == 1, arrived.text
    assert [rule for rule, _ in await planned(runtime)] == ["thank-you", "diapers-restock"]
