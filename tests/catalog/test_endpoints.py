"""`PUT /api/v1/products` and `GET /api/v1/catalog/unknown` over HTTP, on a real database."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from app.catalog.schemas import MAX_PRODUCTS_PER_REQUEST
from app.models import Product, ProductVariant
from app.runtime import Runtime
from tests.conftest import Api
from tests.dashboard.conftest import sign_in
from tests.factories import order_created, post_event


def diapers(**changes: Any) -> dict[str, Any]:
    return {
        "id": "diapers-4",
        "title": "Öko-Windeln Größe 4",
        "categories": ["Baby & Toddler > Diapering > Diapers"],
        "vendor": "Lillydoo",
        "tags": ["eco"],
        "url": "https://shop.example/products/diapers-4",
        "image_url": "https://shop.example/img/diapers-4.jpg",
        "sku": "DIAPER-4-44",
        "price": "13.90",
        **changes,
    }


async def put(client: AsyncClient, api: Api, body: dict[str, Any]) -> Any:
    return await client.put("/api/v1/products", json=body, headers=api.headers)


async def test_put_stores_products_and_a_repeat_changes_nothing(
    client: AsyncClient, api: Api, runtime: Runtime
) -> None:
    coffee = {
        "id": 820982911946154508,
        "title": "Café Bourbon",
        "currency": "USD",
        "variants": [
            {"id": "cb-250", "sku": "COFFEE-250", "title": "250 g", "price": "9.50"},
            {
                "id": "cb-1000",
                "sku": "COFFEE-1000",
                "title": "1 kg",
                "price": "29",
                "in_stock": False,
            },
        ],
    }
    body = {"currency": "EUR", "products": [diapers(), coffee]}
    response = await put(client, api, body)
    assert response.status_code == 200, response.text
    # No order waited for these products: nothing matched, nothing planned.
    nothing_waited = {"items_matched": 0, "messages_planned": 0}
    assert (
        response.json() == {"added": 2, "updated": 0, "unchanged": 0, "stale": 0} | nothing_waited
    )
    assert (await put(client, api, body)).json() == {
        "added": 0,
        "updated": 0,
        "unchanged": 2,
        "stale": 0,
    } | nothing_waited
    async with runtime.session_factory() as session:
        products = (await session.scalars(select(Product).order_by(Product.id))).all()
        variants = (await session.scalars(select(ProductVariant).order_by(ProductVariant.id))).all()
    assert [(p.shop, p.platform, p.external_id, p.currency, p.price) for p in products] == [
        ("default", "custom", "diapers-4", "EUR", Decimal("13.90")),
        ("default", "custom", "820982911946154508", "USD", Decimal("9.50")),
    ]
    assert products[0].category_paths == [["Baby & Toddler", "Diapering", "Diapers"]]
    assert products[1].in_stock is True  # one of its variants is
    assert [(v.external_id, v.sku) for v in variants] == [
        ("diapers-4", "DIAPER-4-44"),
        ("cb-250", "COFFEE-250"),
        ("cb-1000", "COFFEE-1000"),
    ]


async def test_put_names_the_field_of_a_bad_product_and_stores_nothing(
    client: AsyncClient, api: Api, runtime: Runtime
) -> None:
    bad_variant = diapers(id="p-2", sku=None, price=None, variants=[{"price": "-1"}])
    response = await put(
        client,
        api,
        {"shop": "Not A Host!", "products": [diapers(), diapers(id=None), bad_variant]},
    )
    assert response.status_code == 422
    problems = {tuple(error["loc"]): error["msg"] for error in response.json()["detail"]}
    assert problems[("body", "shop")].endswith("is not a host name (or 'default')")
    assert problems[("body", "products", 1)] == "Value error, give the product's id or its handle"
    assert "greater than or equal to 0" in problems[("body", "products", 2, "variants", 0, "price")]
    async with runtime.session_factory() as session:
        assert (await session.scalars(select(Product))).all() == []


async def test_put_limits_the_batch_and_needs_the_api_key(client: AsyncClient, api: Api) -> None:
    many = [diapers(id=f"p-{n}") for n in range(MAX_PRODUCTS_PER_REQUEST + 1)]
    response = await put(client, api, {"products": many})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "products"]
    assert (await client.put("/api/v1/products", json={"products": [diapers()]})).status_code == 401


async def test_unknown_lists_skus_orders_name_that_the_catalog_lacks(
    client: AsyncClient, api: Api
) -> None:
    def item(sku: str, quantity: int = 1) -> dict[str, Any]:
        return {"sku": sku, "name": f"Artikel {sku}", "quantity": quantity, "unit_price": "5.00"}

    for items in (
        [item("DIAPER-4-44"), item("WIPES-12", 2)],
        [item("WIPES-12"), item("CREAM-50")],
        [item("WIPES-12", 3)],
    ):
        assert (await post_event(client, order_created(items=items))).status_code == 200
    await put(client, api, {"products": [diapers()]})  # DIAPER-4-44 is known

    response = await client.get("/api/v1/catalog/unknown", headers=api.headers)
    assert response.status_code == 200
    skus = response.json()["skus"]
    assert [(s["sku"], s["items"], s["orders"], s["quantity"]) for s in skus] == [
        ("WIPES-12", 3, 3, 6),
        ("CREAM-50", 1, 1, 1),
    ]
    assert skus[0]["shop"] == "default" and skus[0]["name"] == "Artikel WIPES-12"
    assert skus[0]["last_ordered_at"] is not None

    limited = await client.get("/api/v1/catalog/unknown?limit=1", headers=api.headers)
    assert [s["sku"] for s in limited.json()["skus"]] == ["WIPES-12"]
    other = await client.get(
        "/api/v1/catalog/unknown?shop=other.myshopify.com", headers=api.headers
    )
    assert other.json() == {"skus": []}
    bad = await client.get("/api/v1/catalog/unknown?shop=no%20host", headers=api.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "shop"]
    assert (await client.get("/api/v1/catalog/unknown")).status_code == 401


async def test_the_console_page_lists_products_and_unknown_skus(
    client: AsyncClient, api: Api
) -> None:
    """`/dashboard/catalog`: the products (search by title or SKU) and the unknown SKUs the
    API lists, in the same order."""
    items = [
        {"sku": "WIPES-12", "name": "Feuchttücher", "quantity": 2, "unit_price": "5.00"},
        {"sku": "DIAPER-4-44", "name": "Windeln", "quantity": 1, "unit_price": "13.90"},
    ]
    assert (await post_event(client, order_created(items=items))).status_code == 200
    coffee = {"id": "cb", "title": "Café Bourbon 100%_pure", "sku": "COFFEE-250", "price": "9.50"}
    await put(client, api, {"currency": "EUR", "products": [diapers(), coffee]})
    await sign_in(client)

    page = (await client.get("/dashboard/catalog")).text
    unknown = (await client.get("/api/v1/catalog/unknown", headers=api.headers)).json()["skus"]
    assert re.findall(r'<tr data-sku="([^"]+)">', page) == [s["sku"] for s in unknown]
    assert [s["sku"] for s in unknown] == ["WIPES-12"]
    assert len(re.findall(r'<tr data-product="\d+">', page)) == 2
    assert "Baby &amp; Toddler › Diapering › Diapers" in page and "EUR 13.90" in page

    def found(query: str) -> list[str]:
        return re.findall(r'<tr data-product="\d+">\s*<th[^>]*>(?:<a[^>]*>)?([^<]+)', query)

    assert found((await client.get("/dashboard/catalog", params={"q": "öko"})).text) == [
        "Öko-Windeln Größe 4"
    ]
    assert found((await client.get("/dashboard/catalog", params={"q": "COFFEE-250"})).text) == [
        "Café Bourbon 100%_pure"
    ]
    assert found((await client.get("/dashboard/catalog", params={"q": "0%_p"})).text) == [
        "Café Bourbon 100%_pure"
    ]
    assert found((await client.get("/dashboard/catalog", params={"q": "0%xp"})).text) == []
