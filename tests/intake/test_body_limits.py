"""Hostile bodies on every webhook route: over 1 MiB is 413 however it is sent (declared
length or chunked), and JSON nested 100,000 deep is 413 or 422, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from app.config import Settings
from app.intake import signature
from app.intake.webhooks import MAX_BODY_BYTES
from app.models import Order, WebhookDelivery
from app.runtime import Runtime
from tests.factories import signed_headers

SHOP = "limits.example"

Signer = Callable[[bytes], dict[str, str]]


def sign_ours(body: bytes) -> dict[str, str]:
    return signed_headers(body)


def shopify_signer(settings: Settings) -> Signer:
    def sign(body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Hmac-Sha256": signature.sign_body_base64(settings.shopify_secrets[0], body),
        }

    return sign


def woocommerce_signer(settings: Settings) -> Signer:
    def sign(body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Source": f"https://{SHOP}/",
            "X-WC-Webhook-Signature": signature.sign_body_base64(
                settings.woocommerce_secrets[0], body
            ),
        }

    return sign


@pytest.fixture(params=["/webhooks/orders", "/webhooks/shopify", "/webhooks/woocommerce"])
def route(request: pytest.FixtureRequest, settings: Settings) -> tuple[str, Signer]:
    path: str = request.param
    signers = {
        "/webhooks/orders": sign_ours,
        "/webhooks/shopify": shopify_signer(settings),
        "/webhooks/woocommerce": woocommerce_signer(settings),
    }
    return path, signers[path]


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def oversized() -> bytes:
    # Valid JSON, so nothing but its size can be the reason it is refused.
    filler = "x" * (MAX_BODY_BYTES + 1)
    return json.dumps({"id": "evt-big", "type": "order.created", "note": filler}).encode()


async def nothing_stored(runtime: Runtime) -> bool:
    async with runtime.session_factory() as session:
        deliveries = (
            await session.execute(select(func.count()).select_from(WebhookDelivery))
        ).scalar_one()
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
    return deliveries == orders == 0


async def test_over_a_mebibyte_with_content_length_is_413(
    client: AsyncClient, runtime: Runtime, route: tuple[str, Signer]
) -> None:
    path, sign = route
    body = oversized()
    response = await client.post(path, content=body, headers=sign(body))
    assert response.status_code == 413, response.text
    assert await nothing_stored(runtime)


async def test_over_a_mebibyte_chunked_without_length_is_413(
    client: AsyncClient, runtime: Runtime, route: tuple[str, Signer]
) -> None:
    path, sign = route
    body = oversized()
    response = await client.post(path, content=chunks(body), headers=sign(body))
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert await nothing_stored(runtime)


async def test_a_lying_small_content_length_does_not_get_past_the_limit(
    client: AsyncClient, runtime: Runtime, route: tuple[str, Signer]
) -> None:
    path, sign = route
    body = oversized()
    headers = {**sign(body), "Content-Length": "100"}
    response = await client.post(path, content=chunks(body), headers=headers)
    assert response.status_code == 413, response.text
    assert await nothing_stored(runtime)


@pytest.mark.parametrize(
    "nested",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"[" * 100_000,  # never closed
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"id": "evt-deep", "type": "order.created", "order": '
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}",
    ],
    ids=["arrays", "unclosed", "objects", "inside-an-event"],
)
async def test_deeply_nested_json_is_refused_not_a_crash(
    client: AsyncClient, runtime: Runtime, route: tuple[str, Signer], nested: bytes
) -> None:
    path, sign = route
    # Signed, so it gets past the signature check to every parser behind it.
    response = await client.post(path, content=nested, headers=sign(nested))
    if path == "/webhooks/orders":
        assert response.status_code in (413, 422), response.text
    else:
        # The platforms get 200 for any authentic delivery (they would retry and then disable
        # the webhook); the body is recorded as unreadable, not crashed on.
        assert response.status_code in (200, 413, 422), response.text
        if response.status_code == 200:
            assert response.json()["status"] in ("unmapped", "ignored"), response.text
    async with runtime.session_factory() as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
    assert orders == 0
