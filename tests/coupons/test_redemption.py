"""Orders that use a mailed code: linked to the message, credited to it, counted in stats."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.config import Settings
from app.models import Conversion, CouponCode, Customer, Order
from app.runtime import Runtime
from app.stats.rollup import fold_stats
from tests.conftest import Api
from tests.coupons.conftest import add_pool, codes_by_message, seed_messages, use_coupon_rule
from tests.coupons.test_claims import drain
from tests.factories import order_created, post_event
from tests.intake.test_shopify import NEW_SECRET, SHOP, payload, post_shopify, shopify_event
from tests.intake.test_woocommerce import to_event as woocommerce_event
from tests.smtp_sink import SmtpSink

RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"shopify_secrets": [f"{SHOP}={NEW_SECRET}"]})


def test_platform_orders_carry_their_codes() -> None:
    placed = shopify_event(
        "orders/create", payload("order_create"), event_id="e-1", received_at=RECEIVED
    )
    assert placed is not None and placed.order.discount_codes == ["WELCOME10"]  # type: ignore[attr-defined]
    woo = woocommerce_event("order.created", _woocommerce_order())
    assert woo.order.discount_codes == ["coffee10"]
    # Nonsense in the list is dropped, not a failed delivery.
    body = payload("order_create") | {"discount_codes": [{"code": " "}, {"amount": "1"}, "x", None]}
    event = shopify_event("orders/create", body, event_id="e-2", received_at=RECEIVED)
    assert event is not None and event.order.discount_codes == []  # type: ignore[attr-defined]


def _woocommerce_order() -> dict[str, object]:
    path = Path(__file__).parents[1] / "intake" / "payloads" / "woocommerce_order.json"
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


async def _mail_one(runtime: Runtime, tmp_path: Path, *, shop: str = "default") -> tuple[int, str]:
    """One promo message sent to customer c0 of `shop`; its id and the code it carried."""
    use_coupon_rule(runtime, tmp_path / "rules")
    await add_pool(runtime, ["BDAY-AB12", "BDAY-CD34"])
    [message_id] = (await seed_messages(runtime, 1, shop=shop)).values()
    await drain(runtime)
    return message_id, (await codes_by_message(runtime))[message_id]


async def _codes(runtime: Runtime) -> dict[str, tuple[int | None, datetime | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(CouponCode.code, CouponCode.redeemed_order_id, CouponCode.redeemed_at)
        )
        return {code: (order_id, at) for code, order_id, at in rows}


async def _conversions(runtime: Runtime) -> list[tuple[int, int, str, Decimal | None]]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Conversion.order_id, Conversion.message_id, Conversion.via, Conversion.revenue)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def _order_id(runtime: Runtime, external_id: str) -> int:
    async with runtime.session_factory() as session:
        found = await session.scalar(select(Order.id).where(Order.external_id == external_id))
    assert found is not None
    return found


async def test_our_webhook_order_with_the_code_converts_for_the_message(
    client: AsyncClient, api: Api, runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    message_id, code = await _mail_one(runtime, tmp_path)
    # Three weeks later, far past the click window, typed in lower case.
    body = order_created(
        order_id="5001",
        customer_id="c0",
        email="user0@example.org",
        created_at="2026-12-11T09:00:00Z",
        occurred_at="2026-12-11T09:00:01Z",
    )
    body["order"]["discount_codes"] = [code.lower(), "SOMETHING-ELSE"]
    response = await post_event(client, body)
    assert response.status_code == 200, response.text
    order_id = await _order_id(runtime, "5001")
    codes = await _codes(runtime)
    assert codes[code] == (order_id, datetime(2026, 12, 11, 9, 0, tzinfo=UTC))
    assert [value for key, value in codes.items() if key != code] == [(None, None)]
    assert await _conversions(runtime) == [(order_id, message_id, "coupon", Decimal("49.80"))]
    async with runtime.session_factory() as session:
        stored = await session.scalar(select(Order.discount_codes).where(Order.id == order_id))
    assert stored == [code.lower(), "SOMETHING-ELSE"]

    # The same order again (a redelivery) changes nothing.
    body["id"] = "evt-redelivered"
    assert (await post_event(client, body)).status_code == 200
    assert len(await _conversions(runtime)) == 1

    await fold_stats(runtime, settle=timedelta(0))
    response = await client.get(
        "/api/v1/stats/rules",
        params={"from": "2026-11-01", "to": "2026-11-30"},
        headers=api.headers,
    )
    assert response.status_code == 200, response.text
    [row] = [row for row in response.json()["rows"] if row["rule"] == "promo"]
    assert (row["sent"], row["converted"], row["conversions"]) == (1, 1, 1)
    assert row["revenue"] == {"EUR": "49.80"} and row["conversion_rate"] == 1.0

    coupons = await client.get("/api/v1/coupons", headers=api.headers)
    assert coupons.json()["pools"][0] | {"pool": "BIRTHDAY"} == {
        "pool": "BIRTHDAY",
        "total": 2,
        "free": 1,
        "assigned": 1,
        "redeemed": 1,
        "expired": 0,
    }


async def test_a_shopify_order_with_the_code_converts_for_the_message(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    body = copy.deepcopy(payload("order_create"))
    customer_id = str(body["customer"]["id"])
    message_id, code = await _mail_one(runtime, tmp_path, shop=SHOP)
    # seed_messages names its customers c0, c1...: make c0 the payload's customer.
    async with runtime.session_factory() as session, session.begin():
        customer = await session.scalar(select(Customer).where(Customer.shop == SHOP))
        assert customer is not None
        customer.external_id = customer_id
    body["discount_codes"] = [{"code": code, "amount": "5.00", "type": "percentage"}]
    response = await post_shopify(client, "orders/create", body)
    assert response.status_code == 200, response.text
    order_id = await _order_id(runtime, str(body["id"]))
    assert (await _codes(runtime))[code][0] == order_id
    assert await _conversions(runtime) == [(order_id, message_id, "coupon", Decimal("70.86"))]


async def test_codes_of_another_shop_or_never_mailed_link_nothing(
    client: AsyncClient, runtime: Runtime, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    _, code = await _mail_one(runtime, tmp_path, shop=SHOP)  # mailed by the Shopify shop
    body = order_created(order_id="5002", created_at="2026-11-21T09:00:00Z")
    body["order"]["discount_codes"] = [code, "BDAY-CD34"]  # the other was never handed out
    assert (await post_event(client, body)).status_code == 200
    assert {order for order, _ in (await _codes(runtime)).values()} == {None}
    assert await _conversions(runtime) == []


async def test_bad_discount_codes_are_named_in_the_error(client: AsyncClient) -> None:
    body = order_created()
    body["order"]["discount_codes"] = ["OK", "", "x" * 256]
    response = await post_event(client, body)
    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("order", "discount_codes", 1) in {loc[-3:] for loc in locations}
    assert ("order", "discount_codes", 2) in {loc[-3:] for loc in locations}
