"""POST /webhooks/orders through the ASGI app into the database."""

from __future__ import annotations

import asyncio
import json
import time

from httpx import AsyncClient
from sqlalchemy import func, select

from app.models import (
    Customer,
    IntakeFailure,
    Message,
    MessageStatus,
    Order,
    OrderItem,
    WebhookDelivery,
)
from app.runtime import Runtime
from tests.factories import order_created, order_event, post_event, signed_headers


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_order_is_stored_and_thank_you_planned(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created(order_id="82098291194615450812")  # 20 digits
    response = await post_event(client, body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "accepted",
        "event_id": body["id"],
        "messages_planned": 1,
        "messages_cancelled": 0,
    }
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        assert order.external_id == "82098291194615450812"
        assert str(order.total) in ("49.8000", "49.80", "49.8")
        assert order.placed_at is not None and order.placed_at.tzinfo is not None
        item = (await session.execute(select(OrderItem))).scalar_one()
        assert (item.sku, item.quantity, item.category) == ("DIAPER-M-60", 2, "baby/diapers")
        message = (await session.execute(select(Message))).scalar_one()
        assert message.rule_id == "thank-you"
        assert message.status == MessageStatus.SCHEDULED
        assert message.send_at == order.placed_at  # after: 0m, counted from the order
        assert message.send_at.utcoffset() is not None


async def test_integer_ids_are_kept_exactly(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created()
    raw = json.dumps(body).replace(f'"{body["order"]["id"]}"', "18446744073709551615").encode()
    response = await post_event(client, raw)
    assert response.status_code == 200, response.text
    async with runtime.session_factory() as session:
        assert (
            await session.execute(select(Order.external_id))
        ).scalar_one() == "18446744073709551615"


async def test_items_may_name_the_shops_product_and_variant_ids(
    client: AsyncClient, runtime: Runtime
) -> None:
    item = {"sku": "DIAPER-M-60", "name": "Windeln M", "quantity": 1, "unit_price": "24.90"}
    body = order_created(
        items=[
            {**item, "product_id": 632910392011223344, "variant_id": "808950810123456789"},
            {**item, "sku": "WIPES-72", "product_id": "wipes"},
            item,
        ]
    )
    response = await post_event(client, body)
    assert response.status_code == 200, response.text
    async with runtime.session_factory() as session:
        rows = (await session.execute(select(OrderItem).order_by(OrderItem.position))).scalars()
        assert [(row.product_ref, row.variant_ref) for row in rows] == [
            ("632910392011223344", "808950810123456789"),  # an integer id kept exactly
            ("wipes", None),
            (None, None),
        ]
    bad = order_created(items=[{**item, "variant_id": "has space"}])
    response = await post_event(client, bad)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "order", "items", 0, "variant_id"]


async def test_duplicate_delivery_has_one_effect(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created()
    first = await post_event(client, body)
    second = await post_event(client, body)
    assert first.json()["status"] == "accepted"
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert await count(runtime, WebhookDelivery) == 1
    assert await count(runtime, Message) == 1
    assert await count(runtime, OrderItem) == 1


async def test_concurrent_copies_have_one_effect(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created()
    responses = await asyncio.gather(*(post_event(client, body) for _ in range(8)))
    assert all(response.status_code == 200 for response in responses), [r.text for r in responses]
    statuses = sorted(response.json()["status"] for response in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 7
    assert await count(runtime, Message) == 1
    assert await count(runtime, OrderItem) == 1


async def test_same_order_under_new_event_id_plans_nothing_new(
    client: AsyncClient, runtime: Runtime
) -> None:
    body = order_created(order_id="777")
    await post_event(client, body)
    again = await post_event(client, {**body, "id": "evt-other"})
    assert again.json() == {
        "status": "accepted",
        "event_id": "evt-other",
        "messages_planned": 0,
        "messages_cancelled": 0,
    }
    assert await count(runtime, Message) == 1
    assert await count(runtime, OrderItem) == 1


async def test_bad_signature_is_refused(client: AsyncClient, runtime: Runtime) -> None:
    raw = json.dumps(order_created()).encode()
    headers = signed_headers(raw, secret="another-secret-entirely")
    response = await client.post("/webhooks/orders", content=raw, headers=headers)
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    tampered = signed_headers(raw)
    response = await client.post("/webhooks/orders", content=raw + b" ", headers=tampered)
    assert response.status_code == 401
    response = await client.post("/webhooks/orders", content=raw)
    assert response.status_code == 401
    assert await count(runtime, WebhookDelivery) == 0


async def test_stale_timestamp_is_refused(client: AsyncClient) -> None:
    response = await post_event(client, order_created(), timestamp=int(time.time()) - 301)
    assert response.status_code == 401
    assert "window" in response.json()["detail"]


async def test_invalid_body_names_each_field(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created()
    body["order"]["total"] = "forty"
    body["order"]["items"][0]["quantity"] = 0
    body["customer"]["email"] = "not-an-address"
    response = await post_event(client, body)
    assert response.status_code == 422
    locations = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("body", "order", "total") in locations
    assert ("body", "order", "items", 0, "quantity") in locations
    assert ("body", "customer", "email") in locations
    # Refused, and kept: the body is authentic (tests/intake/test_intake_failures.py).
    assert await count(runtime, IntakeFailure) == 1
    assert await count(runtime, Order) == 0


async def test_unknown_type_and_broken_json(client: AsyncClient) -> None:
    response = await post_event(client, {**order_created(), "type": "order.exploded"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "type"]
    response = await post_event(client, b'{"id": "x", ')
    assert response.status_code == 422


async def test_body_over_one_mebibyte_is_refused(client: AsyncClient) -> None:
    body = order_created()
    body["padding"] = "x" * (1024 * 1024)
    response = await post_event(client, body)
    assert response.status_code == 413


async def test_cancellation_cancels_pending_and_keeps_reason(
    client: AsyncClient, runtime: Runtime
) -> None:
    body = order_created(order_id="555")
    await post_event(client, body)
    response = await post_event(client, order_event("order.cancelled", "555"))
    assert response.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
        order = (await session.execute(select(Order))).scalar_one()
    assert (message.status, message.status_reason) == ("cancelled", "order_cancelled")
    assert order.status == "cancelled"


async def test_cancellation_before_creation_converges(
    client: AsyncClient, runtime: Runtime
) -> None:
    await post_event(client, order_event("order.cancelled", "556"))
    await post_event(client, order_created(order_id="556"))
    async with runtime.session_factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
        order = (await session.execute(select(Order))).scalar_one()
    assert (message.status, message.status_reason) == ("cancelled", "order_cancelled")
    assert order.status == "cancelled" and order.customer_id is not None


async def test_older_customer_update_does_not_overwrite_newer(
    client: AsyncClient, runtime: Runtime
) -> None:
    newer = order_created(first_name="Anya", occurred_at="2026-11-20T12:00:00Z")
    older = {
        "id": "evt-old-update",
        "type": "customer.updated",
        "occurred_at": "2026-11-20T08:00:00Z",
        "customer": {**newer["customer"], "first_name": "Old Name"},
    }
    await post_event(client, newer)
    await post_event(client, older)
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert customer.first_name == "Anya"


async def test_customer_deleted_erases_and_cancels(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created(email="erase.me@example.org")
    await post_event(client, body)
    response = await post_event(
        client,
        {
            "id": "evt-del",
            "type": "customer.deleted",
            "occurred_at": "2026-11-21T00:00:00Z",
            "customer": {"id": body["customer"]["id"]},
        },
    )
    assert response.json()["messages_cancelled"] == 1
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
        order = (await session.execute(select(Order))).scalar_one()
    assert customer.email is None and customer.first_name is None and customer.deleted_at
    assert order.email is None


async def test_answer_starts_only_after_the_commit(runtime: Runtime) -> None:
    """A 200 must mean stored: at the moment the response starts, another connection
    already sees the delivery and its planned message."""
    from httpx import ASGITransport

    from app.main import create_app

    app = create_app(runtime=runtime, role="api")
    seen_at_start: list[int] = []

    async def watching_app(scope, receive, send):  # type: ignore[no-untyped-def]
        async def watched_send(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                seen_at_start.append(await count(runtime, Message))
            await send(message)

        await app(scope, receive, watched_send)

    async with AsyncClient(
        transport=ASGITransport(app=watching_app), base_url="http://test"
    ) as http:
        app.state.runtime = runtime
        response = await post_event(http, order_created())
    assert response.status_code == 200
    assert seen_at_start == [1]


async def test_customer_country_and_tags_are_stored(client: AsyncClient, runtime: Runtime) -> None:
    body = order_created()
    body["customer"].update(country="DE", tags=["vip", "newsletter"])
    assert (await post_event(client, body)).status_code == 200
    async with runtime.session_factory() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (customer.country, customer.tags) == ("DE", ["vip", "newsletter"])
    body = order_created()
    body["customer"]["country"] = "Germany"
    response = await post_event(client, body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "customer", "country"]


async def test_item_attribute_anchor_through_intake(
    client: AsyncClient, runtime: Runtime, tmp_path
) -> None:
    from tests.outbox.conftest import use_rules

    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: warranty\n    when: {event: order.created}\n"
        "    send: {anchor: item.attributes.warranty_ends, at: -30d, time: '10:00'}\n"
        "    template: thank-you\n",
    )
    body = order_created()
    body["customer"]["time_zone"] = "UTC"
    body["order"]["items"][0]["attributes"] = {"warranty_ends": "2028-06-30"}
    assert (await post_event(client, body)).json()["messages_planned"] == 1
    async with runtime.session_factory() as session:
        message = (await session.execute(select(Message))).scalar_one()
    assert message.send_at.isoformat() == "2028-05-31T10:00:00+00:00"
