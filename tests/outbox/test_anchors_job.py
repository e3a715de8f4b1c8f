"""The anchors job: a child's birth date learned after the order still plans "turns 7"."""

from __future__ import annotations

from pathlib import Path

from httpx import AsyncClient
from sqlalchemy import select

from app.jobs.anchors import plan_anchor_messages
from app.models import Message
from app.runtime import Runtime
from tests.factories import order_created, post_event
from tests.outbox.conftest import use_rules

SCHOOL_DESK = """
rules:
  - id: school-desk
    when: {event: order.created, items: {category: [kids/furniture]}}
    send:
      anchor: customer.attributes.children[].birth_date
      at: +6y9mo
      time: "10:00"
      fallback: {after: 5y}
    template: thank-you
"""


async def rows(runtime: Runtime) -> list[tuple[str, str, str | None, str]]:
    async with runtime.session_factory() as session:
        result = await session.execute(
            select(
                Message.dedupe_key, Message.status, Message.status_reason, Message.send_at
            ).order_by(Message.id)
        )
        return [
            (key, status, reason, send_at.date().isoformat())
            for key, status, reason, send_at in result
        ]


async def test_a_birth_date_added_later_replaces_the_fallback(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, SCHOOL_DESK)
    body = order_created(
        items=[{"sku": "BED-1", "name": "Bed", "category": "kids/furniture", "quantity": 1}]
    )
    body["customer"]["attributes"] = {}
    await post_event(client, body)
    [(fallback_key, status, _, when)] = await rows(runtime)
    assert status == "scheduled" and when.startswith("2031-11")  # 5 years on

    await post_event(
        client,
        {
            "id": "child-added",
            "type": "customer.updated",
            "occurred_at": "2026-11-21T08:00:00Z",
            "customer": {
                **body["customer"],
                "attributes": {"children": [{"birth_date": "2022-03-15"}]},
            },
        },
    )
    assert await plan_anchor_messages(runtime) == 1
    assert await plan_anchor_messages(runtime) == 0  # idempotent: every worker may run it
    fallback, dated = await rows(runtime)
    assert fallback == (fallback_key, "cancelled", "anchor_date_known", when)
    assert dated[0] == f"{fallback_key}:anchor:2022-03-15"
    assert (dated[1], dated[3]) == ("scheduled", "2028-12-15")  # 6y9mo after the birth date


async def test_customers_without_anchored_orders_plan_nothing(
    client: AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    use_rules(runtime, tmp_path, SCHOOL_DESK)
    await post_event(client, order_created())  # diapers: not what the rule is about
    assert await plan_anchor_messages(runtime) == 0
    assert await rows(runtime) == []
