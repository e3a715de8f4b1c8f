"""The operator API (bearer key) and the health endpoints."""

from __future__ import annotations

import asyncio
import sys

import pytest
from httpx import AsyncClient

from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event


async def test_api_needs_a_key(client: AsyncClient) -> None:
    response = await client.get("/api/v1/messages")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    response = await client.get("/api/v1/messages", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_list_filter_and_cancel(client: AsyncClient, api: Api) -> None:
    await post_event(client, order_created(order_id="1", customer_id="a", email="a@example.org"))
    await post_event(client, order_created(order_id="2", customer_id="b", email="b@example.org"))
    response = await client.get("/api/v1/messages", headers=api.headers)
    assert response.status_code == 200
    assert [row["order_id"] for row in response.json()["items"]] == ["2", "1"]
    response = await client.get(
        "/api/v1/messages", params={"email": "A@example.org"}, headers=api.headers
    )
    [row] = response.json()["items"]
    assert row["email"] == "a@example.org"
    assert row["rule"] == "thank-you" and row["template"] == "thank-you"
    assert row["status"] == "scheduled" and row["attempts"] == 0 and row["last_error"] is None
    assert row["send_at"].endswith(("Z", "+00:00"))

    cancelled = await client.post(f"/api/v1/messages/{row['id']}/cancel", headers=api.headers)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == (
        "cancelled",
        "cancelled_by_operator",
    )
    again = await client.post(f"/api/v1/messages/{row['id']}/cancel", headers=api.headers)
    assert again.status_code == 200
    response = await client.get(
        "/api/v1/messages", params={"status": "cancelled"}, headers=api.headers
    )
    assert [item["order_id"] for item in response.json()["items"]] == ["1"]
    response = await client.get("/api/v1/messages", params={"rule": "nope"}, headers=api.headers)
    assert response.json() == {"items": [], "next_cursor": None}
    missing = await client.post("/api/v1/messages/999999/cancel", headers=api.headers)
    assert missing.status_code == 404


async def test_paging(client: AsyncClient, api: Api) -> None:
    for number in range(5):
        await post_event(client, order_created(order_id=str(100 + number)))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/messages", params=params, headers=api.headers)).json()
        seen += [item["order_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["104", "103", "102", "101", "100"]


async def test_list_by_days(client: AsyncClient, api: Api) -> None:
    """`from` and `to`: UTC days, both included, of the send time of mail not sent."""
    for order_id, day in (("31", "2026-11-20"), ("32", "2026-11-25")):
        at = f"{day}T09:00:00Z"
        body = order_created(order_id=order_id, created_at=at, occurred_at=at)
        assert (await post_event(client, body)).status_code == 200
    rows = (await client.get("/api/v1/messages", headers=api.headers)).json()["items"]
    due = {row["order_id"]: row["send_at"][:10] for row in rows}

    async def orders(**params: str) -> list[str]:
        response = await client.get("/api/v1/messages", params=params, headers=api.headers)
        assert response.status_code == 200, response.text
        return [row["order_id"] for row in response.json()["items"]]

    assert await orders(**{"from": due["32"]}) == ["32"]
    assert await orders(to=due["31"]) == ["31"]
    assert await orders(**{"from": due["31"], "to": due["31"]}) == ["31"]
    assert await orders(**{"from": "0001-01-01", "to": "9999-12-31"}) == ["32", "31"]
    assert await orders(**{"from": due["32"], "to": due["31"]}) == []  # an empty span
    bad = await client.get("/api/v1/messages", params={"to": "2026-02-30"}, headers=api.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "to"]


async def test_cannot_cancel_a_sent_message(
    client: AsyncClient, api: Api, runtime: Runtime
) -> None:
    await post_event(client, order_created())
    from sqlalchemy import update

    from app.models import Message

    async with runtime.session_factory() as session, session.begin():
        await session.execute(update(Message).values(status="sent"))
    [row] = (await client.get("/api/v1/messages", headers=api.headers)).json()["items"]
    response = await client.post(f"/api/v1/messages/{row['id']}/cancel", headers=api.headers)
    assert response.status_code == 409


async def test_health_and_readiness(client: AsyncClient, runtime: Runtime) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["rules"]["count"] >= 1
    runtime.rules.loaded = False
    runtime.rules.errors = ("rules/x.yaml: broken",)
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["rules"]["errors"] == ["rules/x.yaml: broken"]


async def _stuck_sending(
    client: AsyncClient, api: Api, runtime: Runtime, *, lease_left: int
) -> int:
    """A message a worker claimed and never finished (it died, or hung on a template)."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.models import Message

    await post_event(client, order_created())
    now = runtime.clock.now()
    async with runtime.session_factory() as session, session.begin():
        await session.execute(
            update(Message).values(
                status="sending",
                claimed_by="worker-gone",
                attempts=1,
                next_attempt_at=now + timedelta(seconds=lease_left),
            )
        )
    [row] = (await client.get("/api/v1/messages", headers=api.headers)).json()["items"]
    assert row["status"] == "sending"
    return int(row["id"])


async def test_cancel_or_fail_a_message_stuck_sending_once_its_lease_expired(
    client: AsyncClient, api: Api, runtime: Runtime, clock: FrozenClock
) -> None:
    from sqlalchemy import select

    from app.models import Message, MessageAttempt

    message_id = await _stuck_sending(client, api, runtime, lease_left=30)
    for action in ("cancel", "fail"):
        live = await client.post(f"/api/v1/messages/{message_id}/{action}", headers=api.headers)
        assert live.status_code == 409
        assert "is being sent" in live.json()["detail"] and "lease" in live.json()["detail"]

    clock.advance(seconds=31)
    failed = await client.post(f"/api/v1/messages/{message_id}/fail", headers=api.headers)
    assert failed.status_code == 200
    assert (failed.json()["status"], failed.json()["reason"]) == ("failed", "failed_by_operator")
    assert failed.json()["next_attempt_at"] is None
    again = await client.post(f"/api/v1/messages/{message_id}/fail", headers=api.headers)
    assert again.status_code == 200  # a repeat changes nothing
    refused = await client.post(f"/api/v1/messages/{message_id}/cancel", headers=api.headers)
    assert refused.status_code == 409 and "message is failed" in refused.json()["detail"]
    async with runtime.session_factory() as session:
        message = await session.get(Message, message_id)
        attempts = (await session.execute(select(MessageAttempt))).scalars().all()
    assert message is not None and message.claimed_by is None
    assert [(a.attempt, a.outcome, a.detail) for a in attempts] == [
        (1, "failed", "failed_by_operator after the sending lease expired")
    ]


async def test_cancel_a_stuck_message_from_the_command_line(
    client: AsyncClient, api: Api, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.outbox.command import end_command

    message_id = await _stuck_sending(client, api, runtime, lease_left=-1)
    code = await asyncio.to_thread(
        end_command,
        settings=runtime.settings,
        message_id=message_id,
        action="cancel",
        stdout=sys.stdout,
        stderr=sys.stderr,
        clock=runtime.clock,
    )
    assert code == 0
    assert capsys.readouterr().out == f"message {message_id}: cancelled (cancelled_by_operator)\n"
    [row] = (await client.get("/api/v1/messages", headers=api.headers)).json()["items"]
    assert (row["status"], row["reason"]) == ("cancelled", "cancelled_by_operator")
    code = await asyncio.to_thread(
        end_command,
        settings=runtime.settings,
        message_id=999999,
        action="fail",
        stdout=sys.stdout,
        stderr=sys.stderr,
        clock=runtime.clock,
    )
    assert code == 1
    assert "aftersale messages fail: no message 999999" in capsys.readouterr().err
