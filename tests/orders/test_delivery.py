"""`order.delivered` and "N days after delivery, else fulfilment + M days": the service
(through the webhook, into the database) and `aftersale simulate` plan the same messages."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update

from app.models import Message, MessageStatus
from app.runtime import Runtime
from tests.factories import post_event
from tests.outbox.conftest import use_rules
from tests.simulate.factories import PLACED, created, days, order_event, replay, rules_in

DELIVERED = """
rules:
  - id: did-it-arrive
    kind: transactional
    when: {event: order.delivered}
    send: {after: 3d, fallback: {after: 7d}}
    template: delivery-follow-up
  - id: shipped
    kind: transactional
    when: {event: order.fulfilled}
    send: {after: 0m}
    template: thank-you
"""
Row = tuple[str, datetime, str, str | None]

SCENARIOS: dict[str, list[dict[str, Any]]] = {
    # No delivery reported: the fallback, 7 days after the fulfilment.
    "fulfilled only": [created("1"), order_event("fulfilled", "1", at=PLACED + days(1))],
    # The delivery replaces the fallback: 3 days after it.
    "fulfilled then delivered": [
        created("1"),
        order_event("fulfilled", "1", at=PLACED + days(1)),
        order_event("delivered", "1", at=PLACED + days(3)),
    ],
    # A delivery is a fulfilment too when none came: both rules, no fallback.
    "delivered only": [created("1"), order_event("delivered", "1", at=PLACED + days(3))],
    # Before its order (a delayed webhook): planned when the order comes.
    "delivered before the order": [
        order_event("delivered", "1", at=PLACED + days(3)),
        {**created("1"), "occurred_at": "2026-11-24T09:00:00Z"},
    ],
    # Reported twice: one message.
    "delivered twice": [
        created("1"),
        order_event("fulfilled", "1", at=PLACED + days(1)),
        order_event("delivered", "1", at=PLACED + days(3)),
        order_event("delivered", "1", at=PLACED + days(4)),
    ],
}


def expected(name: str) -> list[Row]:
    return {
        "fulfilled only": [
            ("shipped", PLACED + days(1), "planned", None),
            ("did-it-arrive", PLACED + days(8), "planned", None),
        ],
        "fulfilled then delivered": [
            ("shipped", PLACED + days(1), "planned", None),
            ("did-it-arrive", PLACED + days(6), "planned", None),
            ("did-it-arrive", PLACED + days(8), "cancelled", "delivered"),
        ],
        "delivered only": [
            ("shipped", PLACED + days(3), "planned", None),
            ("did-it-arrive", PLACED + days(6), "planned", None),
        ],
        "delivered before the order": [
            ("shipped", PLACED + days(3), "planned", None),
            ("did-it-arrive", PLACED + days(6), "planned", None),
        ],
        "delivered twice": [
            ("shipped", PLACED + days(1), "planned", None),
            ("did-it-arrive", PLACED + days(6), "planned", None),
            ("did-it-arrive", PLACED + days(8), "cancelled", "delivered"),
        ],
    }[name]


async def service_rows(runtime: Runtime) -> list[Row]:
    async with runtime.session_factory() as session:
        messages = (await session.execute(select(Message))).scalars().all()
    return sorted(
        (
            m.rule_id,
            m.send_at,
            "planned" if m.status == MessageStatus.SCHEDULED else str(m.status),
            m.status_reason,
        )
        for m in messages
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_service_and_simulate_plan_the_same(
    client: AsyncClient, runtime: Runtime, tmp_path: Path, name: str
) -> None:
    bodies = SCENARIOS[name]
    (tmp_path / "live").mkdir()
    use_rules(runtime, tmp_path / "live", DELIVERED)
    for body in bodies:
        assert (await post_event(client, body)).status_code == 200
    assert await service_rows(runtime) == sorted(expected(name))
    simulated = replay(rules_in(tmp_path / "simulated", DELIVERED), *bodies)
    # The replay lists when a message went: one due before its webhook came goes then.
    arrived = PLACED + days(4) if name == "delivered before the order" else PLACED
    went = [(rule, max(at, arrived), *rest) for rule, at, *rest in expected(name)]
    assert sorted((o.rule, o.send_at, o.status, o.reason) for o in simulated.outcomes) == sorted(
        went
    )


async def test_a_delivery_after_the_fallback_went_out_sends_nothing_more(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    (tmp_path / "live").mkdir()
    use_rules(runtime, tmp_path / "live", DELIVERED)
    bodies = [
        created("1"),
        order_event("fulfilled", "1", at=PLACED + days(1)),
        # Long after the fallback (day 8) was sent: one "did it arrive?" is enough.
        order_event("delivered", "1", at=PLACED + days(10)),
    ]
    for body in bodies[:2]:
        await post_event(client, body)
    async with runtime.session_factory() as session, session.begin():
        # What the dispatcher did on day 8.
        await session.execute(
            update(Message).where(Message.send_at <= PLACED + days(8)).values(status="sent")
        )
    response = await post_event(client, bodies[2])
    assert response.json()["messages_planned"] == 0
    rows = await service_rows(runtime)
    assert rows == [
        ("did-it-arrive", PLACED + days(8), "sent", None),
        ("shipped", PLACED + days(1), "sent", None),
    ]
    simulated = replay(rules_in(tmp_path / "simulated", DELIVERED), *bodies)
    assert sorted((o.rule, o.send_at, o.status) for o in simulated.outcomes) == [
        ("did-it-arrive", PLACED + days(8), "planned"),
        ("shipped", PLACED + days(1), "planned"),
    ]
