"""Learned timing through intake: gaps are recorded once per order and move the next plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import func, select

from app.models import Message, RepurchaseGap
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules

LEARNED = """
rules:
  - id: coffee
    kind: transactional
    when: {event: order.created, items: {category: [coffee]}}
    send: {learned: {fallback: 4w..5w, lead: 7d}}
    template: thank-you
"""


def coffee_order(day: int, *, customer: str = "c-1", order_id: str | None = None) -> dict:
    placed = datetime(2026, 1, 1, 10) + timedelta(days=day)
    return order_created(
        customer_id=customer,
        email=f"{customer}@example.org",
        order_id=order_id,
        created_at=placed.isoformat() + "Z",
        occurred_at=placed.isoformat() + "Z",
        items=[{"sku": "BEANS", "name": "Beans", "category": "coffee/beans", "quantity": 1}],
    )


async def delays(runtime: Runtime) -> list[timedelta]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Message.send_at, Message.dedupe_key).order_by(Message.id)
        )
        return [send_at - datetime(2026, 1, 1, 10, tzinfo=send_at.tzinfo) for send_at, _ in rows]


async def gap_count(runtime: Runtime) -> int:
    async with runtime.session_factory() as session:
        return int((await session.execute(select(func.count(RepurchaseGap.id)))).scalar_one())


async def test_a_customer_who_rebuys_sooner_is_reminded_sooner(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, LEARNED)
    for day in (0, 14, 28):
        assert (await post_event(client, coffee_order(day))).status_code == 200
    first, second, third = await delays(runtime)
    assert first == timedelta(weeks=4)  # nothing known yet: the fallback
    assert second - timedelta(days=14) < timedelta(weeks=4)  # one 14-day gap learned
    assert third - timedelta(days=28) < second - timedelta(days=14)  # two gaps: sooner still
    assert await gap_count(runtime) == 2


async def test_a_redelivered_order_is_learned_once_and_others_learn_from_it(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, LEARNED)
    await post_event(client, coffee_order(0))
    again = coffee_order(10, order_id="o-10")
    await post_event(client, again)
    await post_event(client, {**again, "id": "another-delivery-of-o-10"})
    assert await gap_count(runtime) == 1
    # A new customer's first order already leans toward what others showed (10 days).
    await post_event(client, coffee_order(30, customer="c-2"))
    newcomer = (await delays(runtime))[-1] - timedelta(days=30)
    assert newcomer < timedelta(weeks=4)


async def test_cancelled_orders_teach_nothing(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, LEARNED)
    await post_event(client, coffee_order(0, order_id="o-0"))
    await post_event(
        client,
        {
            "id": "cancel-o-0",
            "type": "order.cancelled",
            "occurred_at": "2026-01-02T10:00:00Z",
            "order": {"id": "o-0"},
        },
    )
    await post_event(client, coffee_order(10))
    assert await gap_count(runtime) == 0
