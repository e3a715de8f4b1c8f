"""Nothing lost: authentic deliveries that cannot be mapped are kept, listed, and replayed
once the mapping is fixed; raw bodies age out after the retention setting."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update

from app.cli import main
from app.config import Settings
from app.db import transaction
from app.intake import repository as intake_repository
from app.intake import shopify
from app.intake.platform import MapContext, Mapper
from app.jobs.raw_retention import expire_raw_payloads
from app.models import IntakeFailure, Message, Order, OrderItem, WebhookDelivery
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.intake.test_shopify import NEW_SECRET, SHOP, count, payload, post_shopify
from tests.intake.test_woocommerce import HOST as WOO_HOST
from tests.intake.test_woocommerce import SECRET as WOO_SECRET
from tests.intake.test_woocommerce import post_woo
from tests.mail.test_preview import cli_env


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "shopify_secrets": [f"{SHOP}={NEW_SECRET}"],
            "woocommerce_secrets": [f"{WOO_HOST}={WOO_SECRET}"],
        }
    )


def renamed_total() -> dict[str, Any]:
    """An order as a newer API version might send it: `total_price` gone, only
    `current_total_price` left. Our mapping does not expect that shape."""
    body = payload("order_create")
    del body["total_price"]
    return body


@pytest.fixture
def fixed_mapping(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call to ship the fix: orders/create then reads `current_total_price` too."""
    original: Mapper = shopify._MAPPERS["orders/create"]

    def fixed(order: dict[str, Any], ctx: MapContext) -> Any:
        order.setdefault("total_price", order.get("current_total_price"))
        return original(order, ctx)

    return lambda: monkeypatch.setitem(shopify._MAPPERS, "orders/create", fixed)


async def replay(*args: str) -> int:
    # The command runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(main, ["intake", "replay", *args])


async def failures(client: AsyncClient, api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/intake/failures", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_unexpected_shape_is_kept_listed_and_replayed_once_fixed(
    client: AsyncClient,
    runtime: Runtime,
    api: Api,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    fixed_mapping: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    response = await post_shopify(client, "orders/create", renamed_total(), event_id="evt-new-api")
    assert response.status_code == 200  # Shopify must not retry, nor disable the webhook
    answer = response.json()
    assert answer["status"] == "unmapped" and "order.total" in answer["reason"]
    assert await count(runtime, Order) == 0

    assert (await client.get("/api/v1/intake/failures")).status_code == 401
    [listed] = await failures(client, api)
    assert listed["id"] == answer["failure_id"]
    assert {key: listed[key] for key in ("source", "shop", "topic", "delivery_id")} == {
        "source": "shopify",
        "shop": "baby-goods.myshopify.com",
        "topic": "orders/create",
        "delivery_id": "evt-new-api",
    }
    assert "order.total" in listed["error"] and "anna" not in listed["error"].lower()
    assert listed["received_at"].startswith("2026-11-20T10:00")  # the runtime's clock
    assert (listed["replayed_at"], listed["replay_result"], listed["attempts"]) == (None, None, 1)

    fixed_mapping()
    assert await replay(str(listed["id"])) == 0
    assert "replayed: accepted, 1 message(s) planned" in capsys.readouterr().out
    assert (await count(runtime, Order), await count(runtime, OrderItem)) == (1, 3)
    assert await count(runtime, Message) == 1
    [done] = await failures(client, api)
    assert done["replayed_at"] is not None
    assert done["replay_result"] == "replayed: accepted (1 planned, 0 cancelled)"
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
    assert (order.total, delivery.customer_id is not None) == (Decimal("70.86"), True)

    # Again, and Shopify's retry of the same event: still one order, one message.
    assert await replay(str(listed["id"])) == 0
    assert "already resolved" in capsys.readouterr().out
    again = await post_shopify(client, "orders/create", renamed_total(), event_id="evt-new-api")
    assert again.json()["status"] == "duplicate"
    assert (await count(runtime, Order), await count(runtime, OrderItem)) == (1, 3)
    assert await count(runtime, Message) == 1
    assert await failures(client, api, state="open") == []


async def test_a_redelivery_after_the_fix_goes_through_once_and_resolves_the_failure(
    client: AsyncClient, runtime: Runtime, api: Api, fixed_mapping: Any
) -> None:
    await post_shopify(client, "orders/create", renamed_total(), event_id="evt-7")
    fixed_mapping()
    redelivered = await post_shopify(client, "orders/create", renamed_total(), event_id="evt-7")
    assert (redelivered.json()["status"], redelivered.json()["messages_planned"]) == (
        "accepted",
        1,
    )
    [failure] = await failures(client, api)
    assert failure["replay_result"] == "redelivered: accepted (1 planned, 0 cancelled)"
    repeat = await post_shopify(client, "orders/create", renamed_total(), event_id="evt-7")
    assert repeat.json()["status"] == "duplicate"
    assert (await count(runtime, WebhookDelivery), await count(runtime, Message)) == (1, 1)


async def test_a_replay_that_still_fails_updates_the_error(
    client: AsyncClient,
    runtime: Runtime,
    api: Api,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    unmapped = await post_shopify(client, "orders/create", renamed_total())
    failure_id = unmapped.json()["failure_id"]
    assert await replay(str(failure_id)) == 1
    assert f"intake failure {failure_id}: still failing: orders/create" in capsys.readouterr().err
    [failure] = await failures(client, api, state="open")
    assert (failure["attempts"], failure["replayed_at"]) == (2, None)
    assert await replay("--all") == 1
    assert await replay(str(failure_id + 100)) == 2
    assert "not found" in capsys.readouterr().err
    assert await count(runtime, Order) == 0


async def test_replay_all_takes_every_open_failure_in_arrival_order(
    client: AsyncClient,
    runtime: Runtime,
    api: Api,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    fixed_mapping: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_env(monkeypatch, settings)
    assert await replay("--all") == 0
    assert "no open intake failures" in capsys.readouterr().out
    guest = payload("order_create_guest")
    guest["current_total_price"] = guest.pop("total_price")
    await post_shopify(client, "orders/create", renamed_total())
    await post_shopify(client, "orders/create", guest)
    fixed_mapping()
    assert await replay("--all") == 0
    assert capsys.readouterr().out.count("replayed: accepted") == 2
    assert await count(runtime, Order) == 2
    assert await failures(client, api, state="open") == []
    assert len(await failures(client, api, state="replayed")) == 2


async def test_our_own_invalid_json_is_refused_422_and_kept(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    body = order_created(event_id="evt-typo")
    body["order"]["currency"] = "euro"
    refused = await post_event(client, body)
    # Our JSON is a documented contract: the sender learns at once what to fix...
    assert refused.status_code == 422
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "order", "currency"]]
    # ...and the authentic body is kept all the same, with what the sender claimed.
    [failure] = await failures(client, api, source="aftersale")
    assert (failure["topic"], failure["delivery_id"]) == ("order.created", "evt-typo")
    assert failure["error"].startswith("order.currency:")
    assert await count(runtime, Order) == 0
    # The sender's corrected copy, under the same event id, goes through and resolves it.
    body["order"]["currency"] = "EUR"
    fixed = await post_event(client, body)
    assert (fixed.status_code, fixed.json()["status"]) == (200, "accepted")
    assert (await post_event(client, body)).json()["status"] == "duplicate"
    [failure] = await failures(client, api)
    assert failure["replay_result"] == "redelivered: accepted (1 planned, 0 cancelled)"
    async with runtime.session_factory() as session:
        stored = (await session.execute(select(WebhookDelivery.body))).scalar_one()
    assert json.loads(stored)["order"]["currency"] == "EUR"  # the copy that went through
    assert (await count(runtime, Order), await count(runtime, Message)) == (1, 1)


async def test_unreadable_json_without_an_id_is_kept_under_its_digest(
    client: AsyncClient, api: Api
) -> None:
    assert (await post_event(client, b"{not json")).status_code == 422
    [failure] = await failures(client, api)
    assert failure["delivery_id"].startswith("sha256:") and failure["topic"] == ""


async def test_bodies_postgresql_cannot_store_are_kept_readable(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    # A raw NUL byte (never in JSON) and an escaped one in the id our JSON claims.
    nul = await post_shopify(client, "orders/create", b'{"id": 1,\x00 "email": "a@b.c"}')
    assert (nul.status_code, nul.json()["status"]) == (200, "unmapped")
    claimed = await post_event(client, b'{"id": "evt\\u0000", "type": "order.created"}')
    assert claimed.status_code == 422
    shopify_failure, own_failure = sorted(await failures(client, api), key=lambda f: f["id"])
    assert own_failure["delivery_id"].startswith("sha256:")
    async with runtime.session_factory() as session:
        stored = (
            await session.execute(
                select(WebhookDelivery.body).where(WebhookDelivery.source == "shopify")
            )
        ).scalar_one()
    assert stored == '{"id": 1,\ufffd "email": "a@b.c"}'
    assert shopify_failure["error"] == "body is not UTF-8 JSON"


async def test_failures_page_newest_first_and_filter(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    for _ in range(3):
        await post_shopify(client, "orders/create", renamed_total())
    await post_woo(client, "order.created", b"[1, 2, 3]")
    first = await client.get("/api/v1/intake/failures", params={"limit": 2}, headers=api.headers)
    page = first.json()
    assert [item["id"] for item in page["items"]] == [4, 3]
    second = await failures(client, api, limit=2, cursor=page["next_cursor"])
    assert [item["id"] for item in second] == [2, 1]
    [woo] = await failures(client, api, source="woocommerce")
    assert (woo["topic"], woo["error"]) == ("order.created", "body is not a JSON object")
    assert (
        await client.get("/api/v1/intake/failures", params={"state": "x"}, headers=api.headers)
    ).status_code == 422


# --- retention ---------------------------------------------------------------------------


async def bodies(runtime: Runtime) -> dict[str, str]:
    async with runtime.session_factory() as session:
        rows = await session.execute(select(WebhookDelivery.delivery_id, WebhookDelivery.body))
        return {delivery_id: body for delivery_id, body in rows}


async def test_retention_empties_old_bodies_and_deletes_old_resolved_failures(
    client: AsyncClient, runtime: Runtime, api: Api, clock: FrozenClock, fixed_mapping: Any
) -> None:
    assert runtime.settings.raw_payload_retention_days == 30
    await post_event(client, order_created(event_id="old"))
    await post_shopify(client, "orders/create", renamed_total(), event_id="old-failed")
    await post_shopify(client, "orders/create", renamed_total(), event_id="old-resolved")
    clock.advance(days=20)
    fixed_mapping()
    await post_shopify(client, "orders/create", renamed_total(), event_id="old-resolved")
    clock.advance(days=11)
    await post_event(client, order_created(event_id="recent"))

    expired = await expire_raw_payloads(runtime)
    kept = await bodies(runtime)
    # Older than 30 days: emptied, the row kept. Unreplayed failures keep theirs to replay.
    assert kept["old"] == "" and kept["old-resolved"] == ""
    assert kept["old-failed"] != "" and kept["recent"] != ""
    assert expired.bodies_emptied == 2
    # The failure resolved 11 days ago stays listed until it too is 30 days old.
    assert expired.failures_deleted == 0
    assert len(await failures(client, api)) == 2

    clock.advance(days=20)
    expired = await expire_raw_payloads(runtime)
    assert (expired.bodies_emptied, expired.failures_deleted) == (0, 1)
    [left] = await failures(client, api)
    assert left["delivery_id"] == "old-failed"
    assert (await bodies(runtime))["old-failed"] != ""
    # Idempotent; and the rows' unique keys still make a late retry a duplicate.
    again = await expire_raw_payloads(runtime)
    assert (again.bodies_emptied, again.failures_deleted) == (0, 0)
    late = await post_shopify(client, "orders/create", renamed_total(), event_id="old-resolved")
    assert late.json()["status"] == "duplicate"
    assert await count(runtime, Order) == 3


async def test_retention_setting_and_pages(
    runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"raw_payload_retention_days": 1})
    async with transaction(runtime.session_factory) as session:
        session.add_all(
            WebhookDelivery(
                source="shopify",
                shop="s.example",
                delivery_id=f"d-{number}",
                event_type="orders/create",
                body="{}",
                received_at=clock.now() - timedelta(days=2),
            )
            for number in range(5)
        )
    monkeypatch.setattr("app.jobs.raw_retention.PAGE", 2)
    assert (await expire_raw_payloads(runtime)).bodies_emptied == 5
    async with transaction(runtime.session_factory) as session:
        assert (
            await intake_repository.expired_body_ids(session, received_before=clock.now(), limit=10)
            == []
        )
        await session.execute(update(WebhookDelivery).values(body="x"))
    assert (await expire_raw_payloads(runtime)).bodies_emptied == 5
    assert await count(runtime, IntakeFailure) == 0
