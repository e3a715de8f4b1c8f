"""A small coffee shop for recommendation tests: its catalog (our product JSON) and an order
history in which Ethiopia buyers also buy Kenya, Brazil and a grinder.

Expected for a customer who owns Kenya and now buys Ethiopia (`co_purchase`, 3): Brazil and
the grinder (bought by Ethiopia's buyers; Kenya is owned, Guatemala out of stock), then the
best seller of the same category (Colombia).
"""

from __future__ import annotations

import json
from typing import Any

from httpx import AsyncClient

from tests.conftest import Api
from tests.factories import order_created, post_event

SHOP_URL = "https://kaffee.example"


def product(
    product_id: str, sku: str, title: str, category: str, price: str, **more: Any
) -> dict[str, Any]:
    return {
        "id": product_id,
        "title": title,
        "categories": [category],
        "url": f"{SHOP_URL}/products/{sku.lower()}",
        "image_url": f"{SHOP_URL}/images/{sku.lower()}.jpg",
        "sku": sku,
        "price": price,
        **more,
    }


PRODUCTS = [
    product("7354001", "COF-ETH-500", "Äthiopien Yirgacheffe 500 g", "Coffee > Beans", "16.50"),
    product("7354002", "COF-KEN-500", "Kenia Nyeri AA 500 g", "Coffee > Beans", "17.90"),
    product("7354003", "COF-BRA-500", "Brasilien Cerrado 500 g", "Coffee > Beans", "13.90"),
    product(
        "7354004",
        "COF-GUA-500",
        "Guatemala Huehuetenango 500 g",
        "Coffee > Beans",
        "15.90",
        in_stock=False,
    ),
    product("7354005", "GRINDER-HAND", "Handmühle Comandante", "Kitchen > Coffee", "249.00"),
    product("7354006", "COF-COL-500", "Kolumbien Huila 500 g", "Coffee > Beans", "14.90"),
]
TITLES = {entry["sku"]: entry["title"] for entry in PRODUCTS}
URLS = {entry["sku"]: entry["url"] for entry in PRODUCTS}
EXPECTED = ["COF-BRA-500", "GRINDER-HAND", "COF-COL-500"]

# What the other customers bought, one order per product, in October 2026.
BASKETS: list[tuple[str, list[str]]] = [
    ("b-1", ["COF-ETH-500", "COF-KEN-500", "COF-BRA-500", "COF-GUA-500"]),
    ("b-2", ["COF-ETH-500", "COF-KEN-500", "COF-BRA-500", "COF-GUA-500"]),
    ("b-3", ["COF-ETH-500", "COF-KEN-500", "COF-BRA-500"]),
    ("b-4", ["COF-ETH-500", "COF-KEN-500"]),
    ("b-5", ["COF-ETH-500", "GRINDER-HAND"]),
    ("b-6", ["COF-COL-500"]),
]


def item(sku: str) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": TITLES[sku],
        "category": "coffee/beans" if sku.startswith("COF-") else "kitchen/coffee",
        "quantity": 1,
        "unit_price": PRODUCTS[[p["sku"] for p in PRODUCTS].index(sku)]["price"],
    }


async def load_shop(client: AsyncClient, api: Api) -> None:
    """The catalog, every other customer's orders, and Anna's earlier Kenya order."""
    response = await client.put(
        "/api/v1/products",
        json={"currency": "EUR", "products": PRODUCTS},
        headers=api.headers,
    )
    assert response.status_code == 200, response.text
    for when, customer, sku in history():
        await post_event(
            client,
            order_created(
                customer_id=customer,
                email=f"{customer}@example.org",
                created_at=when,
                occurred_at=when,
                items=[item(sku)],
            ),
        )
    await post_event(client, anna_order("COF-KEN-500", "2026-09-15T09:00:00Z"))


def history() -> list[tuple[str, str, str]]:
    """(placed at, customer, SKU) of the other customers' orders: one order per product,
    days apart (co-purchase is per customer, not per basket)."""
    return [
        (f"2026-10-{1 + number * 4 + offset:02d}T09:00:00Z", customer, sku)
        for number, (customer, skus) in enumerate(BASKETS)
        for offset, sku in enumerate(skus)
    ]


def anna_order(sku: str, when: str = "2026-11-20T09:59:00Z") -> dict[str, Any]:
    return order_created(
        customer_id="c-anna",
        email="anna@example.org",
        first_name="Anna",
        created_at=when,
        occurred_at=when,
        items=[item(sku)],
    )


def product_lines() -> str:
    """The catalog as `aftersale catalog import` and `simulate --catalog` read it."""
    return "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in PRODUCTS)
