"""Shopify `customers/data_request`: the export is made when the request comes in, kept in
privacy_requests and listed at /api/v1/privacy/requests (issue 16, item 3)."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from app.config import Settings
from tests.conftest import Api
from tests.intake import test_shopify as shopify


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"shopify_secrets": [f"{shopify.SHOP}={shopify.NEW_SECRET}"]})


async def test_a_data_request_is_answered_with_the_customers_export(
    client: AsyncClient, api: Api
) -> None:
    order = shopify.payload("order_create")
    assert (await shopify.post_shopify(client, "orders/create", order)).is_success
    request = shopify.payload("customers_data_request")
    event = "e7c5b4a0-4f0e-4d1c-9a65-0c1f2b3d4e5f"
    answer = await shopify.post_shopify(client, "customers/data_request", request, event_id=event)
    assert answer.json()["status"] == "accepted"
    # Shopify retries (the same event id): one request all the same.
    again = await shopify.post_shopify(client, "customers/data_request", request, event_id=event)
    assert again.json()["status"] == "duplicate"

    assert (await client.get("/api/v1/privacy/requests")).status_code == 401
    page = (await client.get("/api/v1/privacy/requests", headers=api.headers)).json()
    [listed] = page["items"]
    assert page["next_cursor"] is None
    assert (listed["shop"], listed["platform"], listed["kind"]) == (
        shopify.SHOP,
        "shopify",
        "data_request",
    )
    assert listed["customer_ref"] == "115310627314723954" and listed["delivered_at"] is None
    [person] = listed["export"]["customers"]
    assert person["customer"]["id"] == "115310627314723954"
    assert person["customer"]["first_name"] == order["customer"]["first_name"]
    [exported] = person["orders"]
    assert exported["id"] == "820982911946154508"
    assert len(exported["items"]) == len(order["line_items"])
    one = await client.get(f"/api/v1/privacy/requests/{listed['id']}", headers=api.headers)
    assert one.json() == listed
    missing = await client.get("/api/v1/privacy/requests/999", headers=api.headers)
    assert missing.status_code == 404


async def test_a_request_by_address_only_and_one_about_nobody(
    client: AsyncClient, api: Api
) -> None:
    order = shopify.payload("order_create")
    await shopify.post_shopify(client, "orders/create", order)
    # An id the shop's customer row does not carry: found by the address instead.
    by_address: dict[str, Any] = shopify.payload("customers_data_request")
    by_address["customer"]["id"] = 115310627314700001
    by_address["customer"]["email"] = "Anna.Ivanova@Example.org"
    await shopify.post_shopify(client, "customers/data_request", by_address)
    nobody = shopify.payload("customers_data_request")
    nobody["customer"] = {"id": 115310627314799999, "email": "pavel@example.org", "phone": None}
    await shopify.post_shopify(client, "customers/data_request", nobody)

    items = (await client.get("/api/v1/privacy/requests", headers=api.headers)).json()["items"]
    newest, first = items  # newest first
    assert newest["export"]["customers"] == []  # nothing held: said so, not left empty
    [person] = first["export"]["customers"]
    assert person["customer"]["email"] == "anna.ivanova@example.org"
    page = await client.get("/api/v1/privacy/requests?limit=1", headers=api.headers)
    assert page.json()["next_cursor"] == newest["id"]
    rest = await client.get(
        f"/api/v1/privacy/requests?limit=1&cursor={newest['id']}", headers=api.headers
    )
    assert [row["id"] for row in rest.json()["items"]] == [first["id"]]


async def test_shop_redact_clears_the_stored_exports(client: AsyncClient, api: Api) -> None:
    await shopify.post_shopify(client, "orders/create", shopify.payload("order_create"))
    request = shopify.payload("customers_data_request")
    await shopify.post_shopify(client, "customers/data_request", request)
    [listed] = (await client.get("/api/v1/privacy/requests", headers=api.headers)).json()["items"]
    assert listed["export"]["customers"]
    # The shop uninstalled us: every export it asked for goes with its data; the record
    # that a request came in stays.
    redact = {"shop_id": request["shop_id"], "shop_domain": shopify.SHOP}
    assert (await shopify.post_shopify(client, "shop/redact", redact)).is_success
    [after] = (await client.get("/api/v1/privacy/requests", headers=api.headers)).json()["items"]
    assert (after["id"], after["export"], after["customer_ref"]) == (listed["id"], None, None)
