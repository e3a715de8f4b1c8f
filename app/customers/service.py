"""Privacy requests: export everything held about a customer; erase a customer or a shop."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.customers import repository
from app.models import Customer
from app.orders import repository as orders
from app.outbox import planned as outbox
from app.survey.repository import answers_of_messages as survey_answers


async def export_customer(
    session: AsyncSession, *, shop: str, external_id: str, now: datetime
) -> dict[str, Any] | None:
    """The customer's data as JSON-ready values, or None if we hold nothing about them."""
    customer = await repository.find_customer(session, shop=shop, external_id=external_id)
    if customer is None:
        return None
    data = await repository.customer_data(session, customer)
    answers = await survey_answers(session, [message.id for message, _ in data["messages"]])
    return {
        "exported_at": now.isoformat(),
        "customer": _customer(customer),
        "orders": [
            {
                "id": order.external_id,
                "number": order.number,
                "email": order.email,
                "attributes": order.attributes,
                "currency": order.currency,
                "total": _money(order.total),
                "status": order.status,
                "placed_at": _time(order.placed_at),
                "fulfilled_at": _time(order.fulfilled_at),
                "delivered_at": _time(order.delivered_at),
                "cancelled_at": _time(order.cancelled_at),
                "refunded_at": _time(order.refunded_at),
                "items": [
                    {
                        "sku": item.sku,
                        "name": item.name,
                        "category": item.category,
                        "tags": item.tags,
                        "quantity": item.quantity,
                        "unit_price": _money(item.unit_price),
                        "attributes": item.attributes,
                    }
                    for item in items
                ],
            }
            for order, items in data["orders"]
        ],
        "messages": [
            {
                "id": message.id,
                "rule": message.rule_id,
                "template": message.template,
                "variant": message.variant,
                "kind": message.kind,
                "status": message.status,
                "reason": message.status_reason,
                "send_at": _time(message.send_at),
                "sent_at": _time(message.sent_at),
                "recipient": message.recipient,
                "smtp_message_id": message.smtp_message_id,
                "attempts": [
                    {
                        "attempt": attempt.attempt,
                        "attempted_at": _time(attempt.attempted_at),
                        "outcome": attempt.outcome,
                        "smtp_code": attempt.smtp_code,
                        "detail": attempt.detail,
                    }
                    for attempt in attempts
                ],
            }
            for message, attempts in data["messages"]
        ],
        "webhook_deliveries": [
            {
                "source": delivery.source,
                "delivery_id": delivery.delivery_id,
                "event_type": delivery.event_type,
                "received_at": _time(delivery.received_at),
                "body": _body(delivery.body),
            }
            for delivery in data["deliveries"]
        ],
        # What they answered to "Would you recommend us?", and wrote on the thank-you page.
        "survey_answers": [
            {
                "message_id": answer.message_id,
                "score": answer.score,
                "answered_at": _time(answer.answered_at),
                "class": answer.class_,
                "reason": answer.reason,
                "comment": answer.comment,
                "commented_at": _time(answer.commented_at),
                "user_agent": answer.user_agent,
                "network": answer.ip,
            }
            for answer in answers
        ],
        "suppressions": [
            {"email": row.email, "reason": row.reason, "created_at": _time(row.created_at)}
            for row in data["suppressions"]
        ],
        "consent_changes": [
            {"change": row.change, "source": row.source, "at": _time(row.at)}
            for row in await repository.consent_changes(session, customer.id)
        ],
        # Bounces and complaints reported about their mail (docs/deliverability.md).
        "mail_feedback": [
            {
                "message_id": event.message_id,
                "provider": event.provider,
                "kind": event.kind,
                "recipient": event.recipient,
                "detail": event.detail,
                "received_at": _time(event.received_at),
            }
            for event in data["mail_feedback"]
        ],
    }


async def erase_customer(session: AsyncSession, *, customer_id: int, now: datetime) -> int:
    """Cancel what is waiting for the customer, then erase their personal data everywhere.
    Returns how many messages were cancelled."""
    cancelled = await outbox.cancel_pending(
        session, customer_id=customer_id, reason="customer_deleted"
    )
    await orders.erase_customer(session, customer_id=customer_id, now=now)
    return cancelled


async def erase_shop(session: AsyncSession, *, shop: str, now: datetime) -> int:
    """A shop uninstalled us (Shopify `shop/redact`): erase every customer and raw body."""
    cancelled = 0
    for customer_id in await repository.shop_customer_ids(session, shop=shop):
        cancelled += await erase_customer(session, customer_id=customer_id, now=now)
    await repository.erase_shop_deliveries(session, shop=shop)
    return cancelled


def _customer(customer: Customer) -> dict[str, Any]:
    return {
        "shop": customer.shop,
        "id": customer.external_id,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "locale": customer.locale,
        "time_zone": customer.time_zone,
        "country": customer.country,
        "tags": customer.tags,
        "birthday": customer.birthday.isoformat() if customer.birthday else None,
        "marketing_consent": customer.marketing_consent,
        "marketing_opt_out_at": _time(customer.marketing_opt_out_at),
        "attributes": customer.attributes,
        "created_at": _time(customer.created_at),
        "updated_at": _time(customer.updated_at),
        "erased_at": _time(customer.deleted_at),
    }


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _money(amount: Any) -> str | None:
    return None if amount is None else str(amount)


def _body(text: str) -> Any:
    if not text:
        return None  # erased or aged out
    try:
        return json.loads(text)
    except ValueError:
        return text  # e.g. a form-encoded body


async def find(session: AsyncSession, *, shop: str, external_id: str) -> int | None:
    customer = await repository.find_customer(session, shop=shop, external_id=external_id)
    return customer.id if customer else None
