"""The lapse job: a regular who went quiet gets one win-back per lapse, however often the job
runs, planned only once its send time is within the horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select

from app.jobs.lapses import HORIZON, plan_lapse_messages
from app.models import Message, Order
from app.runtime import Runtime
from tests.conftest import FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules

START = datetime(2026, 11, 1, 10, tzinfo=UTC)


async def test_a_lapse_is_planned_once_within_the_horizon(
    client: AsyncClient, runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    use_rules(
        runtime,
        tmp_path,
        "rules:\n  - id: win-back\n    when: {event: customer.lapsed}\n"
        "    send: {after: 30d}\n    template: win-back\n",
    )
    for n in range(3):  # every 10 days: lapsed 10 days after the third
        at = (START + timedelta(days=10 * n)).isoformat().replace("+00:00", "Z")
        await post_event(client, order_created(order_id=f"9100{n}", created_at=at, occurred_at=at))
    # Not a regular: one order.
    await post_event(client, order_created(customer_id="c-2", email="b@example.org"))
    send_at = START + timedelta(days=20 + 10 + 30)

    clock.current = send_at - HORIZON - timedelta(hours=1)
    assert await plan_lapse_messages(runtime) == 0
    clock.current = send_at - HORIZON
    assert await plan_lapse_messages(runtime) == 1
    assert await plan_lapse_messages(runtime) == 0  # a rerun (or a second worker) adds none
    async with runtime.session_factory() as session:
        message, last = (
            await session.execute(
                select(Message, Order.external_id).join(Order, Order.id == Message.order_id)
            )
        ).one()
    assert (message.rule_id, message.send_at, last) == ("win-back", send_at, "91002")
