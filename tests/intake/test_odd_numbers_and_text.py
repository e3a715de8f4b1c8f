"""Signed bodies with odd JSON (issue 16, item 4): non-finite and out-of-range numbers, lone
surrogates, invalid UTF-8. Nothing answers 500 and nothing authentic is lost, on both
databases:
- a bad value is kept as an intake failure, and answered like any invalid payload: our own
  JSON 422 naming the field (never echoing values), a platform 200 `unmapped` (a platform
  retries any other answer until it disables the webhook); a replay fails the same way;
- text no database can store (a lone surrogate) is mended to U+FFFD and the order goes in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.db import transaction
from app.events import EXAMPLE_BODY
from app.intake.replay import replay_failure
from app.models import Customer, IntakeFailure, Order
from app.runtime import Runtime
from tests.intake.test_body_limits import Signer, route  # noqa: F401 (the fixture)

PAYLOADS = Path(__file__).parent / "payloads"
# The customer's first name in each route's sample order.
FIRST_NAMES = {
    "/webhooks/orders": "Anna",
    "/webhooks/shopify": "Анна",
    "/webhooks/woocommerce": "Мария",
}
MARKER = "__ODD__"
NUMBERS = {
    "nan": "NaN",
    "infinity": "Infinity",
    "minus_infinity": "-Infinity",
    "huge_exponent": "1e400",
    "huge_integer": "1" + "0" * 40,
}


def body_with(path: str, *, price: str | None = None, gift: str | None = None) -> bytes:
    """A realistic order of the route's platform, with raw JSON text put in as its first
    item's price and as a free-form gift note."""
    if path == "/webhooks/orders":
        data = json.loads(json.dumps(EXAMPLE_BODY))
        item, attributes = data["order"]["items"][0], data["order"].setdefault("attributes", {})
        if price is not None:
            item["unit_price"] = f"{MARKER}price"
        if gift is not None:
            attributes["gift"] = f"{MARKER}gift"
    elif path == "/webhooks/shopify":
        data = json.loads((PAYLOADS / "shopify_order_create.json").read_text())
        if price is not None:
            data["line_items"][0]["price"] = f"{MARKER}price"
        if gift is not None:
            data["note_attributes"] = [{"name": "gift", "value": f"{MARKER}gift"}]
    else:
        data = json.loads((PAYLOADS / "woocommerce_order.json").read_text())
        if price is not None:
            data["line_items"][0]["subtotal"] = f"{MARKER}price"  # the price is read from it
        if gift is not None:
            data["line_items"][0]["meta_data"] = [
                {"id": 1, "key": "gift", "value": f"{MARKER}gift"}
            ]
    text = json.dumps(data, ensure_ascii=False)
    for name, value in (("price", price), ("gift", gift)):
        if value is not None:
            text = text.replace(f'"{MARKER}{name}"', value)
    return text.encode()


async def kept_failures(runtime: Runtime) -> list[IntakeFailure]:
    async with runtime.session_factory() as session:
        return list((await session.execute(select(IntakeFailure))).scalars())


async def orders(runtime: Runtime) -> int:
    async with runtime.session_factory() as session:
        return len((await session.execute(select(Order.id))).all())


@pytest.mark.parametrize("number", sorted(NUMBERS))
@pytest.mark.parametrize("where", ["price", "gift"])
async def test_odd_numbers_are_kept_and_answered_without_500(
    client: AsyncClient,
    runtime: Runtime,
    route: tuple[str, Signer],  # noqa: F811
    number: str,
    where: str,
) -> None:
    path, sign = route
    body = body_with(path, **{where: NUMBERS[number]})
    response = await client.post(path, content=body, headers=sign(body))

    # A big integer is a number both databases' JSON store: nothing odd about it; so is 1e400
    # where platform payloads are read with exact decimals. WooCommerce line meta is kept
    # only when it is text or an integer: the odd value is left out.
    storable = number == "huge_integer" or (
        number == "huge_exponent" and path == "/webhooks/shopify"
    )
    if where == "gift" and (storable or path == "/webhooks/woocommerce"):
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        return
    if path == "/webhooks/orders":
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert set(error) == {"type", "loc", "msg"}  # no `input`: the body is not echoed
        field = "unit_price" if where == "price" else "attributes"
        assert field in error["loc"], error
        assert "anna" not in response.text.lower()  # nor any personal data in it
    else:
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "unmapped"
    assert await orders(runtime) == 0
    [failure] = await kept_failures(runtime)
    assert "анна" not in failure.error.lower()  # the error names fields, not values

    # Replayable: the same verdict again, recorded, not a crash.
    async with transaction(runtime.session_factory) as session:
        outcome = await replay_failure(
            session,
            failure_id=failure.id,
            rules=runtime.rules.current,
            settings=runtime.settings,
            now=runtime.clock.now(),
        )
    assert outcome is not None and outcome.status == "unmapped"


async def test_a_lone_surrogate_is_mended_and_the_order_goes_in(
    client: AsyncClient,
    runtime: Runtime,
    route: tuple[str, Signer],  # noqa: F811
) -> None:
    path, sign = route
    # A name cut in the middle of an emoji's surrogate pair, as a broken client sends it.
    name = FIRST_NAMES[path]
    text = body_with(path).decode()
    assert f'"{name}"' in text
    body = text.replace(f'"{name}"', f'"\\ud83d {name}"').encode()
    response = await client.post(path, content=body, headers=sign(body))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted", response.text
    async with runtime.session_factory() as session:
        names = (await session.execute(select(Customer.first_name))).scalars().all()
    assert names == [f"\ufffd {name}"]
    assert await kept_failures(runtime) == []


async def test_invalid_utf8_is_kept_and_answered_without_500(
    client: AsyncClient,
    runtime: Runtime,
    route: tuple[str, Signer],  # noqa: F811
) -> None:
    path, sign = route
    name = FIRST_NAMES[path].encode()
    assert name in body_with(path)
    body = body_with(path).replace(name, name[:-1] + b"\xff")
    response = await client.post(path, content=body, headers=sign(body))
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert all(set(error) == {"type", "loc", "msg"} for error in response.json()["detail"])
    else:
        assert response.json()["status"] == "unmapped"
    [failure] = await kept_failures(runtime)
    assert "\ufffd" not in failure.error
