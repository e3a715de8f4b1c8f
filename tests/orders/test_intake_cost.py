"""What one order costs the database: the round trips of `POST /webhooks/orders`.

Each statement is a round trip and, in SQLAlchemy, more CPU than the database spends on it;
intake throughput (bench/ingest.py) follows their number. These budgets keep a change that
adds a read-back or a lookup whose answer is already known from going unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from httpx import AsyncClient
from sqlalchemy import event, select

from app.models import Message, Order, OrderItem, WebhookDelivery
from app.runtime import Runtime
from tests.conftest import Api
from tests.factories import order_created, post_event


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL the app sends while the block runs, first line of each."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement.split("\n")[0][:100])

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


async def test_first_order_of_a_new_customer_writes_without_reading_back(
    client: AsyncClient, runtime: Runtime
) -> None:
    body = order_created(customer_id="c-new")
    with statements(runtime) as sent:
        response = await post_event(client, body)
    assert response.json()["messages_planned"] == 1, response.text
    # Delivery; in one statement whether the person was erased (an event about them from
    # before the erasure stores nothing), whether their address is suppressed and the
    # person's row (by id, else address: one customer per person); customer, order, the
    # items' catalog products (one lookup by ids and SKUs), items, messages, delivery's
    # owner: a new customer has no history, mail or clicks to look up. bench/ingest.py's
    # orders run these 8 (the repeat customers' the 11 below), plus BEGIN and COMMIT.
    assert len(sent) <= 8, "\n".join(sent)
    assert not any(line.startswith("SELECT customers") for line in sent), sent
    assert not any(line.startswith("SELECT suppressions") for line in sent), sent
    async with runtime.session_factory() as session:
        order = (await session.execute(select(Order))).scalar_one()
        delivery = (await session.execute(select(WebhookDelivery))).scalar_one()
        assert delivery.customer_id == order.customer_id is not None
        assert len((await session.execute(select(OrderItem))).all()) == len(body["order"]["items"])
        assert (await session.execute(select(Message.order_id))).scalar_one() == order.id


async def test_repeat_customer_costs_only_the_lookups_that_can_find_something(
    client: AsyncClient, runtime: Runtime
) -> None:
    await post_event(client, order_created(customer_id="c-again"))
    with statements(runtime) as sent:
        response = await post_event(client, order_created(customer_id="c-again"))
    assert response.json()["messages_planned"] == 1, response.text
    # As above, plus: the customer's update, their clicks and holdouts (attribution), and
    # their earlier orders (first order or not).
    assert len(sent) <= 11, "\n".join(sent)
    async with runtime.session_factory() as session:
        owners = (await session.execute(select(WebhookDelivery.customer_id))).scalars().all()
        assert len(owners) == 2 and len(set(owners)) == 1 and owners[0] is not None


async def test_a_suppressed_address_is_known_from_the_erasure_lookup(
    client: AsyncClient, runtime: Runtime, api: Api
) -> None:
    """The suppression answer that comes with the erasure lookup is the one planning uses:
    the order's mail is stored as skipped, whatever the case of the address."""
    added = await client.post(
        "/api/v1/suppressions", json={"email": "Anna@Example.ORG"}, headers=api.headers
    )
    assert added.status_code in (200, 201), added.text
    with statements(runtime) as sent:
        response = await post_event(client, order_created(email="ANNA@example.org"))
    assert response.json()["messages_planned"] == 1, response.text
    assert len(sent) <= 8, "\n".join(sent)
    async with runtime.session_factory() as session:
        status, reason = (
            await session.execute(select(Message.status, Message.status_reason))
        ).one()
    assert (status, reason) == ("skipped", "suppressed")
