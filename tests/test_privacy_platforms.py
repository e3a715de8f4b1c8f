"""Erasure through the platforms is complete and stays done (issue 16, items 1 and 2).

After Shopify `customers/redact` or WooCommerce `customer.deleted`, a dump of every table
holds none of the person's address, names, phone or street: not in the rows, not in any raw
body (the erasure request's own, a data request, an order that was ignored and never linked
to them). What arrives about them later stores nothing and plans nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import AsyncClient

from app.config import Settings
from app.runtime import Runtime
from tests.conftest import Api
from tests.intake import test_shopify as shopify
from tests.intake import test_woocommerce as woo
from tests.test_privacy import counts, database_text


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "shopify_secrets": [f"{shopify.SHOP}={shopify.NEW_SECRET}"],
            "woocommerce_secrets": [f"{woo.HOST}={woo.SECRET}"],
        }
    )


def traces(*values: str) -> list[str]:
    """Each value as a dump may hold it: as is, and as JSON escapes it (WooCommerce's
    wp_json_encode writes non-ASCII as \\uXXXX), lower-cased like the dump."""
    found = set()
    for value in values:
        found.add(value.lower())
        found.add(json.dumps(value).strip('"').lower())
    return sorted(found)


async def left(runtime: Runtime, secrets: list[str]) -> list[str]:
    text = await database_text(runtime)
    return [secret for secret in secrets if secret in text]


SHOPIFY_PERSON = traces(
    "anna.ivanova@example.org",
    "Анна",
    "Иванова",
    "+7 912 345-67-89",
    "+79123456789",
    "ул. Ленина, д. 10, кв. 5",
)


async def test_shopify_redact_leaves_nothing_and_late_events_store_nothing(
    client: AsyncClient, api: Api, runtime: Runtime
) -> None:
    order = shopify.payload("order_create")
    assert (await shopify.post_shopify(client, "orders/create", order)).json()["status"] == (
        "accepted"
    )
    request = shopify.payload("customers_data_request")
    assert (await shopify.post_shopify(client, "customers/data_request", request)).is_success
    assert await left(runtime, SHOPIFY_PERSON)  # the dump can see them
    # The data request was answered at intake: its export is kept, with her order in it.
    [answered] = (await client.get("/api/v1/privacy/requests", headers=api.headers)).json()["items"]
    [person] = answered["export"]["customers"]
    assert person["customer"]["email"] == "anna.ivanova@example.org"
    assert [o["id"] for o in person["orders"]] == [str(order["id"])]

    redact = shopify.payload("customers_redact")
    assert (await shopify.post_shopify(client, "customers/redact", redact)).is_success
    assert await left(runtime, SHOPIFY_PERSON) == []
    # The request stays on the list (it was received and answered), its export is gone.
    kept = await client.get(f"/api/v1/privacy/requests/{answered['id']}", headers=api.headers)
    assert (kept.json()["export"], kept.json()["customer_ref"]) == (None, None)
    before = await counts(runtime)

    # Shopify redelivers the order later (a new webhook id), and fulfils it: nothing stored.
    late = await shopify.post_shopify(client, "orders/updated", order)
    assert late.json()["status"] == "ignored"
    fulfilment = shopify.payload("fulfillment_update_delivered")
    await shopify.post_shopify(client, "fulfillments/update", fulfilment)
    assert await left(runtime, SHOPIFY_PERSON) == []
    assert await counts(runtime) == before


WOO_PERSON = traces(
    "maria.smirnova@example.ru",
    "Мария",
    "Смирнова",
    "+7 921 555-12-34",
    "Невский проспект, 28",
)


async def test_woocommerce_customer_deleted_reaches_ignored_deliveries_too(
    client: AsyncClient, runtime: Runtime
) -> None:
    order = woo.payload("order")
    assert (await woo.post_woo(client, "order.created", order)).json()["status"] == "accepted"
    # Another order of hers, never paid: ignored, so never linked to her customer row.
    unpaid: dict[str, Any] = dict(order, id=4128, number="4128", status="pending")
    assert (await woo.post_woo(client, "order.created", unpaid)).json()["status"] == "ignored"
    assert await left(runtime, WOO_PERSON)

    deleted = await woo.post_woo(client, "customer.deleted", {"id": order["customer_id"]})
    assert deleted.is_success, deleted.text
    assert await left(runtime, WOO_PERSON) == []

    # A late copy of the paid order (delivered again by the site's retry queue).
    again = await woo.post_woo(client, "order.updated", order)
    assert again.json()["status"] in ("ignored", "accepted")
    assert await left(runtime, WOO_PERSON) == []
