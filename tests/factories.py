"""Builders for webhook bodies, a signed POST as a shop would send it, and due messages."""

from __future__ import annotations

import copy
import itertools
import json
import time
from typing import Any

from httpx import AsyncClient, Response

from app.db import transaction
from app.events import EXAMPLE_BODY
from app.intake.signature import sign
from app.models import Customer, Message
from app.runtime import Runtime
from tests.conftest import TEST_WEBHOOK_SECRET

_sequence = itertools.count(1)


def order_created(
    *,
    order_id: str | None = None,
    customer_id: str = "c-1001",
    email: str = "anna@example.org",
    first_name: str | None = "Anna",
    locale: str | None = "en",
    consent: bool = True,
    event_id: str | None = None,
    created_at: str = "2026-11-20T09:59:00Z",
    occurred_at: str = "2026-11-20T10:00:00Z",
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    number = next(_sequence)
    body = copy.deepcopy(EXAMPLE_BODY)
    body["id"] = event_id or f"evt-{number}"
    body["occurred_at"] = occurred_at
    body["order"]["id"] = order_id or f"{820982911946154508 + number}"
    body["order"]["created_at"] = created_at
    if items is not None:
        body["order"]["items"] = items
    body["customer"].update(
        id=customer_id, email=email, first_name=first_name, locale=locale, marketing_consent=consent
    )
    return body


def order_event(event_type: str, order_id: str, *, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt-{event_type}-{next(_sequence)}",
        "type": event_type,
        "occurred_at": "2026-11-20T11:00:00Z",
        "order": {"id": order_id},
    }


def signed_headers(
    raw: bytes, *, secret: str = TEST_WEBHOOK_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "X-Aftersale-Timestamp": str(stamp),
        "X-Aftersale-Signature": sign(secret, stamp, raw),
    }


async def post_event(client: AsyncClient, body: dict[str, Any] | bytes, **kwargs: Any) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/webhooks/orders", content=raw, headers=signed_headers(raw, **kwargs))


async def seed_due_messages(runtime: Runtime, *emails: str) -> None:
    """One customer per address, each with a thank-you message due now."""
    now = runtime.clock.now()
    async with transaction(runtime.session_factory) as session:
        customers = [
            Customer(
                shop="default",
                external_id=f"seed-{index}",
                email=address,
                first_name="Jörg",
                source_updated_at=now,
                attributes={},
            )
            for index, address in enumerate(emails)
        ]
        session.add_all(customers)
        await session.flush()
        session.add_all(
            Message(
                customer_id=customer.id,
                rule_id="thank-you",
                rule_version="v",
                template="thank-you",
                kind="transactional",
                dedupe_key=f"seed:{customer.id}",
                status="scheduled",
                send_at=now,
                next_attempt_at=now,
                attempts=0,
            )
            for customer in customers
        )
