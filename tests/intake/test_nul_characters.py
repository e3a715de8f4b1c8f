"""NUL characters, which PostgreSQL text cannot hold: never a 500, on either database.

In a URL they are refused (422); in a platform's webhook they are dropped from the payload's
strings, so the order still goes through.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.config import Settings
from app.models import Customer, OrderItem
from app.runtime import Runtime
from tests.conftest import Api
from tests.factories import order_created, post_event
from tests.intake.test_body_limits import shopify_signer, woocommerce_signer

PAYLOADS = Path(__file__).parent / "payloads"

URLS = [
    ("GET", "/api/v1/messages?email=a%00@example.org"),
    ("GET", "/api/v1/messages?order_id=%00"),
    ("GET", "/api/v1/messages?rule=%00"),
    ("GET", "/api/v1/suppressions?email=%00"),
    ("DELETE", "/api/v1/suppressions/a%00@example.org"),
    ("GET", "/api/v1/customers/c%001/export"),
    ("DELETE", "/api/v1/customers/c%001"),
    ("GET", "/api/v1/messages?%00=1"),
]


@pytest.mark.parametrize(("method", "url"), URLS)
async def test_nul_in_the_url_is_422(client: AsyncClient, api: Api, method: str, url: str) -> None:
    response = await client.request(method, url, headers=api.headers)
    assert response.status_code == 422, response.text
    assert "NUL characters are not allowed" in response.text


async def customers(runtime: Runtime) -> list[tuple[str | None, str | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(Customer.first_name, Customer.email))
        return [tuple(row) for row in rows]


async def test_nul_in_a_shopify_payload_is_dropped(
    client: AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    payload = json.loads((PAYLOADS / "shopify_order_create.json").read_text())
    payload["customer"]["first_name"] = "An\u0000na"
    payload["note"] = "\u0000" * 3
    payload["line_items"][0]["name"] = "Tea\u0000 mug"
    body = json.dumps(payload).encode()
    assert b"\\u0000" in body
    response = await client.post(
        "/webhooks/shopify", content=body, headers=shopify_signer(settings)(body)
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted", response.text
    assert await customers(runtime) == [("Anna", "anna.ivanova@example.org")]
    async with runtime.session_factory() as session:
        names = (await session.execute(select(OrderItem.name))).scalars().all()
    assert "Tea mug" in names


async def test_nul_in_a_woocommerce_payload_is_dropped(
    client: AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    payload = json.loads((PAYLOADS / "woocommerce_order.json").read_text())
    payload["billing"]["first_name"] = "Ма\u0000рия"
    body = json.dumps(payload).encode()
    response = await client.post(
        "/webhooks/woocommerce", content=body, headers=woocommerce_signer(settings)(body)
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted", response.text
    assert await customers(runtime) == [("Мария", "maria.smirnova@example.ru")]


async def test_nul_in_our_own_webhook_is_refused_or_dropped(
    client: AsyncClient, runtime: Runtime
) -> None:
    try:
        response = await post_event(client, order_created(first_name="An\u0000na"))
    except Exception as exc:  # the test client re-raises the app's error: a 500
        pytest.fail(f"500: {type(exc).__name__}")
    assert response.status_code in (200, 422), response.text
    assert all("\x00" not in (name or "") for name, _ in await customers(runtime))
