"""Partial refunds: only the messages about the refunded items are cancelled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from app.lifecycle.refunds import remaining_quantities
from app.models import Message, Order
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
    kind: transactional
    when: {event: order.created, items: {category: [baby/diapers]}}
    send: {after: 1w}
    template: thank-you
  - id: coffee
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {after: 4w}
    template: thank-you
"""
ITEMS = [
    {"sku": "DIAPER-M", "name": "Diapers", "category": "baby/diapers", "quantity": 2},
    {"sku": "BEANS", "name": "Beans", "category": "coffee/beans", "quantity": 1},
]


@dataclass
class Line:
    sku: str | None
    quantity: int


def test_refunds_come_off_matching_lines_in_order() -> None:
    lines = [Line("A", 2), Line("B", 1), Line("A", 3)]
    assert remaining_quantities(lines, []) == [2, 1, 3]
    assert remaining_quantities(lines, [{"sku": "A", "quantity": 3}]) == [0, 1, 2]
    assert remaining_quantities(lines, [{"sku": "A", "quantity": 9}]) == [0, 1, 0]
    assert remaining_quantities(lines, [{"sku": "Z", "quantity": 1}]) == [2, 1, 3]
    assert remaining_quantities(lines, [{"sku": "B"}, {"sku": "A", "quantity": 1}]) == [1, 0, 3]


def refund(order_id: str, event_id: str, *items: tuple[str, int]) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "order.refunded",
        "occurred_at": "2026-11-21T10:00:00Z",
        "order": {"id": order_id},
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
    }


async def state(runtime: Runtime) -> tuple[str, dict[str, tuple[str, str | None]]]:
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        messages = (await session.execute(select(Message))).scalars()
        return order.status, {m.rule_id: (m.status, m.status_reason) for m in messages}


async def test_a_partial_refund_cancels_only_what_its_items_planned(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await post_event(client, order_created(order_id="o-1", items=ITEMS))
    response = await post_event(client, refund("o-1", "r-1", ("DIAPER-M", 2)))
    assert response.json()["messages_cancelled"] == 1
    assert await state(runtime) == (
        "open",
        {
            "thanks": ("scheduled", None),
            "restock": ("cancelled", "order_refunded"),
            "coffee": ("scheduled", None),
        },
    )
    # Refunding the rest is a full refund.
    await post_event(client, refund("o-1", "r-2", ("BEANS", 1)))
    assert await state(runtime) == (
        "refunded",
        {
            "thanks": ("cancelled", "order_refunded"),
            "restock": ("cancelled", "order_refunded"),
            "coffee": ("cancelled", "order_refunded"),
        },
    )


async def test_one_of_two_packs_refunded_keeps_the_reminder(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await post_event(client, order_created(order_id="o-1", items=ITEMS))
    await post_event(client, refund("o-1", "r-1", ("DIAPER-M", 1)))
    assert (await state(runtime))[1]["restock"] == ("scheduled", None)


async def test_a_refund_before_its_order_applies_when_the_order_comes(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await post_event(client, refund("o-1", "r-1", ("DIAPER-M", 2)))
    await post_event(client, order_created(order_id="o-1", items=ITEMS))
    # Planned as if in order, so the diapers reminder is there, cancelled.
    assert await state(runtime) == (
        "open",
        {
            "thanks": ("scheduled", None),
            "restock": ("cancelled", "order_refunded"),
            "coffee": ("scheduled", None),
        },
    )

    await post_event(client, refund("o-1", "r-2", ("BEANS", 1)))
    assert (await state(runtime))[0] == "refunded"


async def test_everything_refunded_before_the_order_leaves_it_refunded(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, RULES)
    await post_event(client, refund("o-1", "r-1", ("DIAPER-M", 2), ("BEANS", 1)))
    await post_event(client, order_created(order_id="o-1", items=ITEMS))
    refunded = ("cancelled", "order_refunded")
    assert await state(runtime) == (
        "refunded",
        {"thanks": refunded, "restock": refunded, "coffee": refunded},
    )
