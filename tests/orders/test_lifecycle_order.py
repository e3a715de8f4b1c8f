"""Events in any order end in the state they reach in order.

Webhooks are retried and race each other: a cancellation can come before its order, a
fulfilment before the order, a consent change before the order that carried older customer
data, a retried order after its cancellation. For every permutation of each scenario the
final order, customer and messages must equal those of the in-order delivery.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.models import Customer, Message, Order
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules

RULES = """
rules:
  - id: thanks
    kind: transactional
    when: {event: order.created}
    template: thank-you
  - id: restock
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 1w..2w}
    template: thank-you
  - id: arrived
    kind: transactional
    when: {event: order.fulfilled}
    send: {after: 3d}
    template: thank-you
  - id: care
    when: {event: order.fulfilled, items: {category: [baby/diapers]}}
    send: {after: 2w}
    template: thank-you
  - id: coffee
    when: {event: order.fulfilled, items: {category: [coffee]}}
    send: {after: 4w}
    template: thank-you
"""

Event = Callable[[int], dict[str, Any]]


def created(n: int, *, event_id: str = "created") -> dict[str, Any]:
    return order_created(
        order_id=f"o-{n}",
        customer_id=f"c-{n}",
        email=f"c{n}@example.org",
        event_id=f"{event_id}-{n}",
        created_at="2026-11-20T09:00:00Z",
        occurred_at="2026-11-20T09:00:00Z",
    )


def created_with_coffee(n: int) -> dict[str, Any]:
    body = created(n)
    body["order"]["items"].append(
        {"sku": "BEANS", "name": "Beans", "category": "coffee/beans", "quantity": 1}
    )
    return body


def diapers_refunded(n: int) -> dict[str, Any]:
    event = on_order("order.refunded", "2026-11-23T09:00:00Z")(n)
    return {**event, "items": [{"sku": "DIAPER-M-60", "quantity": 2}]}


def retried_created(n: int) -> dict[str, Any]:
    return created(n, event_id="created-retry")  # the same order, another delivery id


def on_order(kind: str, at: str) -> Event:
    def event(n: int) -> dict[str, Any]:
        return {"id": f"{kind}-{n}", "type": kind, "occurred_at": at, "order": {"id": f"o-{n}"}}

    event.__name__ = kind.removeprefix("order.")
    return event


def consent_withdrawn(n: int) -> dict[str, Any]:
    customer = created(n)["customer"]
    return {
        "id": f"withdraw-{n}",
        "type": "customer.updated",
        "occurred_at": "2026-11-21T09:00:00Z",
        "customer": {**customer, "marketing_consent": False, "locale": "ru"},
    }


fulfilled = on_order("order.fulfilled", "2026-11-22T09:00:00Z")
cancelled = on_order("order.cancelled", "2026-11-23T09:00:00Z")
refunded = on_order("order.refunded", "2026-11-23T09:00:00Z")

SCENARIOS = {
    "fulfilment and consent": [created, fulfilled, consent_withdrawn],
    "cancellation and retry": [created, fulfilled, cancelled, retried_created],
    "refund": [created, fulfilled, refunded],
    "partial refund": [created_with_coffee, fulfilled, diapers_refunded],
}


async def final_state(runtime: Runtime, n: int) -> tuple[Any, ...]:
    async with runtime.session_factory() as session:
        order = (
            await session.execute(select(Order).where(Order.external_id == f"o-{n}"))
        ).scalar_one()
        customer = (
            await session.execute(select(Customer).where(Customer.external_id == f"c-{n}"))
        ).scalar_one()
        messages = (
            await session.execute(select(Message).where(Message.order_id == order.id))
        ).scalars()
        return (
            (order.status, order.placed_at, order.fulfilled_at, order.cancelled_at, order.total),
            (customer.marketing_consent, customer.locale, customer.email == f"c{n}@example.org"),
            sorted((m.rule_id, m.status, m.status_reason, m.send_at.isoformat()) for m in messages),
        )


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_arrival_order_converges(
    client: AsyncClient, runtime: Runtime, tmp_path: Path, scenario: str
) -> None:
    use_rules(runtime, tmp_path, RULES)
    events = SCENARIOS[scenario]
    states = {}
    for n, permutation in enumerate(itertools.permutations(events)):
        for event in permutation:
            assert (await post_event(client, event(n))).status_code == 200
        states[tuple(event.__name__ for event in permutation)] = await final_state(runtime, n)
    in_order = states[tuple(event.__name__ for event in events)]
    assert in_order[2], "the scenario plans messages"
    different = {names: state for names, state in states.items() if state != in_order}
    assert different == {}, f"in order: {in_order}"
