"""`/dashboard/intake`: deliveries that could not be mapped, their body and error, and a
replay from the page once the cause is fixed."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient

from app.models import Order
from app.runtime import Runtime
from tests.conftest import Api
from tests.dashboard.conftest import csrf_token, sign_in
from tests.intake.test_intake_failures import failures, fixed_mapping, renamed_total, settings  # noqa: F401
from tests.intake.test_shopify import count, post_shopify


async def test_read_and_replay_a_failure(
    client: AsyncClient,
    runtime: Runtime,
    api: Api,
    fixed_mapping: Any,  # noqa: F811
) -> None:
    response = await post_shopify(client, "orders/create", renamed_total(), event_id="evt-new-api")
    failure_id = response.json()["failure_id"]
    await sign_in(client)

    listing = (await client.get("/dashboard/intake")).text
    assert re.findall(r'<tr data-failure="(\d+)">', listing) == [str(failure_id)]
    assert "order.total" in listing and "shopify · orders/create" in listing
    replayed_only = (await client.get("/dashboard/intake", params={"state": "replayed"})).text
    assert "data-failure" not in replayed_only and "No intake failures" in replayed_only
    bad = await client.get("/dashboard/intake", params={"state": "typo"})
    assert bad.status_code == 422

    page = (await client.get(f"/dashboard/intake/{failure_id}")).text
    assert "&#34;current_total_price&#34;: " in page  # the body as received, indented
    assert "evt-new-api" in page and 'data-field="state">open' in page

    # Replayed before the fix: still failing, and the page says so.
    token = await csrf_token(client, f"/dashboard/intake/{failure_id}")
    response = await client.post(f"/dashboard/intake/{failure_id}/replay", data={"csrf": token})
    assert response.headers["location"] == f"/dashboard/intake/{failure_id}?replayed=1"
    page = (await client.get(response.headers["location"])).text
    assert "it still fails" in page and await count(runtime, Order) == 0
    [listed] = await failures(client, api)
    assert listed["attempts"] == 2

    assert (await client.post(f"/dashboard/intake/{failure_id}/replay")).status_code == 403
    fixed_mapping()
    response = await client.post(f"/dashboard/intake/{failure_id}/replay", data={"csrf": token})
    page = (await client.get(response.headers["location"])).text
    assert "it went through" in page and "replayed: accepted" in page
    assert await count(runtime, Order) == 1
    assert 'action="/dashboard/intake/' not in page  # nothing left to replay
    [listed] = await failures(client, api)
    assert listed["replayed_at"] is not None

    assert (await client.get("/dashboard/intake/999999")).status_code == 404
