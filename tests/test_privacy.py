"""Privacy: erasure leaves no personal data anywhere in the database; export shows it all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, select

from app.customers.service import erase_shop
from app.db import Base, transaction
from app.feedback.model import MAIL, Feedback
from app.feedback.references import make_reference
from app.feedback.service import apply_feedback
from app.mail.unsubscribe import make_token
from app.models import (
    ConsentChange,
    Customer,
    FeedbackKind,
    MailFeedbackEvent,
    Message,
    Order,
    ProductReview,
    SuppressionRemoval,
)
from app.privacy import email_digest
from app.runtime import Runtime
from tests.conftest import Api, FrozenClock
from tests.factories import order_created, post_event
from tests.outbox.conftest import make_dispatcher, use_rules
from tests.smtp_sink import SmtpSink

EMAIL = "Anna.Ivanova@Example.org"
SECRETS = ["anna.ivanova@example.org", "Анна", "Иванова", "Для Анны с любовью", "Маша"]
TWO_RULES = """
rules:
  - id: now
    kind: transactional
    when: {event: order.created}
    template: thank-you
  - id: later
    kind: transactional
    when: {event: order.created}
    send: {after: 1w}
    template: thank-you
"""


def personal_order(order_id: str, event_id: str | None = None) -> dict[str, Any]:
    body = order_created(
        order_id=order_id, customer_id="c-77", email=EMAIL, first_name="Анна", event_id=event_id
    )
    body["customer"]["last_name"] = "Иванова"
    body["customer"]["attributes"] = {"children": [{"name": "Маша", "birth_date": "2021-05-01"}]}
    body["order"]["items"][0]["attributes"] = {"engraving": "Для Анны с любовью"}
    # Order attributes (Shopify's note_attributes) carry personal text too.
    body["order"]["attributes"] = {"gift_message": "Анне от Бориса"}
    body["order"]["number"] = "#1042"
    return body


async def database_text(runtime: Runtime) -> str:
    """Every value of every row of every table, as one lower-cased text."""
    chunks = []
    async with runtime.session_factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks).lower()


async def counts(runtime: Runtime) -> tuple[int, int]:
    async with runtime.session_factory() as session:
        messages = (await session.execute(select(func.count(Message.id)))).scalar_one()
        orders = (await session.execute(select(func.count(Order.id)))).scalar_one()
    return messages, orders


async def test_erasure_leaves_no_trace_and_keeps_the_counts(
    client: AsyncClient,
    api: Api,
    runtime: Runtime,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    clock: FrozenClock,
) -> None:
    use_rules(runtime, tmp_path, TWO_RULES)
    dispatcher = make_dispatcher(runtime, "privacy")
    # The mailbox is gone: the bounce quotes the address, and suppresses it.
    smtp_sink.rcpt_reply = lambda address: f"550 5.1.1 <{address}>: no such user"
    await post_event(client, personal_order("o-1"))
    assert (await dispatcher.run_once()).outcomes == {"failed": 1}
    await dispatcher.sender.close()
    # The operator lifts the suppression (recorded, quoting the bounce) and puts it back; the
    # customer unsubscribes from marketing (recorded with the address).
    lifted = await client.delete(
        f"/api/v1/suppressions/{EMAIL}", params={"note": "Анна Иванова called"}, headers=api.headers
    )
    assert lifted.status_code == 204
    bounce = {"email": EMAIL, "reason": "hard_bounce", "detail": f"550 <{EMAIL.lower()}>"}
    assert (await client.post("/api/v1/suppressions", json=bounce, headers=api.headers)).is_success
    async with runtime.session_factory() as session:
        customer_id = (await session.execute(select(Customer.id))).scalar_one()
    token = make_token(customer_id=customer_id, secrets=runtime.settings.unsubscribe_secrets)
    assert (await client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")).is_success
    await record_later_bounces(runtime)
    await record_a_review(runtime)
    before = await database_text(runtime)
    assert all(secret.lower() in before for secret in SECRETS)  # the scan can see them
    before_counts = await counts(runtime)

    response = await post_event(
        client,
        {
            "id": "redact-1",
            "type": "customer.deleted",
            "occurred_at": "2026-11-20T12:00:00Z",
            "customer": {"id": "c-77"},
        },
    )
    assert response.json()["messages_cancelled"] == 1  # the one still waiting

    after = await database_text(runtime)
    assert [secret for secret in SECRETS if secret.lower() in after] == []
    assert await counts(runtime) == before_counts
    # The records stay, without the address: the removal under its digest, the consent
    # change with its time and kind.
    async with runtime.session_factory() as session:
        [removal] = (await session.execute(select(SuppressionRemoval))).scalars().all()
        [change] = (await session.execute(select(ConsentChange))).scalars().all()
    assert removal.email == email_digest(EMAIL) and removal.note is None
    assert (change.change, change.email) == ("marketing_off", None)
    async with runtime.session_factory() as session:
        kinds = (await session.execute(select(MailFeedbackEvent.kind))).scalars().all()
    assert sorted(kinds) == ["complaint", "soft_bounce"]  # still counted, no longer whose

    # A late copy of an order placed before the erasure stores nothing and plans nothing.
    smtp_sink.rcpt_reply = lambda _address: None
    late = await post_event(client, personal_order("o-late"))
    assert late.json()["status"] == "ignored"
    assert [secret for secret in SECRETS if secret.lower() in await database_text(runtime)] == []
    assert await counts(runtime) == before_counts
    # The person orders again after the erasure: a new customer, and the suppression (kept
    # without the address) still holds.
    clock.advance(hours=3)
    again = personal_order("o-2")
    again["occurred_at"] = again["order"]["created_at"] = "2026-11-20T13:00:00Z"
    assert (await post_event(client, again)).json()["status"] == "accepted"
    async with runtime.session_factory() as session:
        newest = (await session.execute(select(Message).order_by(Message.id.desc()))).scalars()
        statuses = {(m.rule_id, m.status, m.status_reason) for m in list(newest)[:2]}
        customers = (await session.execute(select(Customer.id))).all()
    assert statuses == {("now", "skipped", "suppressed"), ("later", "skipped", "suppressed")}
    assert len(customers) == 2  # the erased one stays erased
    assert smtp_sink.received == []


async def record_a_review(runtime: Runtime) -> None:
    """A product review of the customer's message, with a comment in their own words and
    their browser and network (app/reviews): the stars stay, the rest goes."""
    async with transaction(runtime.session_factory) as session:
        message = (await session.execute(select(Message).order_by(Message.id))).scalars().first()
        assert message is not None
        session.add(
            ProductReview(
                message_id=message.id,
                customer_id=message.customer_id,
                order_id=message.order_id,
                item_position=0,
                sku="KF-WARDROBE",
                name="Kids' wardrobe",
                stars=5,
                class_="human",
                reason="browser",
                answered_at=runtime.clock.now(),
                comment="Для Анны с любовью: Маша loves it",
                commented_at=runtime.clock.now(),
                user_agent="Mozilla/5.0 (Анна's iPad)",
                ip="203.0.113.0",
            )
        )


async def record_later_bounces(runtime: Runtime) -> None:
    """Reports that quote the address: one about the customer's message, one naming only it."""
    async with transaction(runtime.session_factory) as session:
        message_id = (await session.execute(select(func.min(Message.id)))).scalar_one()
        address = EMAIL.lower()
        detail = f"DSN failed 5.1.1 550 5.1.1 <{address}>: no such user"
        reports = [
            Feedback(MAIL, "report-1", FeedbackKind.SOFT_BOUNCE, address, detail, reference=None),
            Feedback(
                MAIL,
                "report-2",
                FeedbackKind.COMPLAINT,
                address,
                "ARF abuse",
                reference=make_reference(message_id, secret=runtime.settings.secret_key),
            ),
        ]
        applied = await apply_feedback(
            session, reports=reports, secret=runtime.settings.secret_key, now=runtime.clock.now()
        )
    assert (applied.recorded, applied.unmatched) == (2, 1)


async def test_export_holds_everything_and_needs_a_key(
    client: AsyncClient, api: Api, runtime: Runtime
) -> None:
    await post_event(client, personal_order("o-1", event_id="evt-export"))
    url = "/api/v1/customers/c-77/export"
    assert (await client.get(url)).status_code == 401
    assert (
        await client.get("/api/v1/customers/nobody/export", headers=api.headers)
    ).status_code == 404
    assert (await client.get(url + "?shop=other", headers=api.headers)).status_code == 404
    data = (await client.get(url, headers=api.headers)).json()
    assert data["customer"]["email"] == EMAIL.lower()
    assert data["customer"]["last_name"] == "Иванова"
    [order] = data["orders"]
    assert order["id"] == "o-1" and order["total"] == "49.8000"
    assert order["items"][0]["attributes"] == {"engraving": "Для Анны с любовью"}
    assert (order["number"], order["attributes"]) == ("1042", {"gift_message": "Анне от Бориса"})
    assert [message["rule"] for message in data["messages"]] == ["thank-you"]
    assert data["consent_changes"] == [] and data["customer"]["marketing_opt_out_at"] is None
    [delivery] = data["webhook_deliveries"]
    assert delivery["delivery_id"] == "evt-export"
    assert delivery["body"]["customer"]["first_name"] == "Анна"


async def test_operator_erasure_endpoint(client: AsyncClient, api: Api, runtime: Runtime) -> None:
    await post_event(client, personal_order("o-1"))
    assert (await client.delete("/api/v1/customers/c-77")).status_code == 401
    response = await client.delete("/api/v1/customers/c-77", headers=api.headers)
    assert response.status_code == 200
    text = await database_text(runtime)
    assert "анна" not in text and "анне от бориса" not in text
    assert (await client.delete("/api/v1/customers/c-78", headers=api.headers)).status_code == 404


async def test_a_whole_shop_is_erased(client: AsyncClient, runtime: Runtime) -> None:
    await post_event(client, personal_order("o-1"))
    await post_event(
        client, order_created(order_id="o-9", customer_id="c-9", email="boris@example.org")
    )
    async with transaction(runtime.session_factory) as session:
        assert await erase_shop(session, shop="default", now=runtime.clock.now()) == 2
    text = await database_text(runtime)
    assert "boris@example.org" not in text and "анна" not in text
