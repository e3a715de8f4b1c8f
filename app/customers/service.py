"""Privacy requests: export everything held about a customer; erase a customer or a shop."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import consent
from app.customers import repository
from app.events import CustomerRef
from app.models import Customer, MailFeedbackEvent, PrivacyRequest, Suppression
from app.outbox import planned as outbox
from app.privacy import email_digest
from app.survey.repository import answers_of_messages as survey_answers


async def export_customer(
    session: AsyncSession, *, shop: str, external_id: str, now: datetime
) -> dict[str, Any] | None:
    """The customer's data as JSON-ready values, or None if we hold nothing about them."""
    customer = await repository.find_customer(session, shop=shop, external_id=external_id)
    if customer is None:
        return None
    return {"exported_at": now.isoformat(), **await _customer_document(session, customer)}


async def customer_document(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    """What the export holds about one customer row (the console's People page shows it)."""
    return await _customer_document(session, customer)


async def export_address(
    session: AsyncSession, *, email: str, shop: str | None, now: datetime
) -> dict[str, Any] | None:
    """Everything held about the person at this address, in `shop` or in every shop: one
    document per customer row, and what is kept by address alone. None if nothing is."""
    customers = await consent.customers_at(session, emails=[email], shop=shop)
    return await _person_document(session, customers=customers, email=email, shop=shop, now=now)


async def answer_data_request(
    session: AsyncSession,
    *,
    platform: str,
    shop: str,
    customer_ref: str | None,
    email: str | None,
    now: datetime,
) -> PrivacyRequest:
    """Produce the export a platform asked for (the shop's customer by id, else by address)
    and keep it to be listed at /api/v1/privacy/requests."""
    customer = None
    if customer_ref:
        customer = await repository.find_customer(session, shop=shop, external_id=customer_ref)
        if customer is not None and customer.deleted_at is not None:
            customer = None  # erased already: nothing of theirs is held
    customers = [customer] if customer else []
    if not customers and email:
        customers = await consent.customers_at(session, emails=[email], shop=shop)
    address = customers[0].email if customers and customers[0].email else email
    export = await _person_document(session, customers=customers, email=address, shop=shop, now=now)
    request = PrivacyRequest(
        shop=shop,
        platform=platform,
        kind="data_request",
        customer_ref=customer_ref,
        customer_id=customers[0].id if customers else None,
        subject=email_digest(address) if address else None,
        requested_at=now,
        # Nothing held is an answer too: say so rather than store nothing.
        export=export or _nothing_held(now=now, shop=shop),
    )
    repository.add_privacy_request(session, request)
    await session.flush()
    return request


def _nothing_held(*, now: datetime, shop: str | None) -> dict[str, Any]:
    return {
        "exported_at": now.isoformat(),
        "shop": shop,
        "customers": [],
        "suppressions": [],
        "mail_feedback": [],
    }


async def _person_document(
    session: AsyncSession,
    *,
    customers: list[Customer],
    email: str | None,
    shop: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    suppressions = await repository.suppressions_of(session, email) if email else []
    feedback = await repository.feedback_naming(session, email) if email else []
    if not customers and not suppressions and not feedback:
        return None
    return {
        "exported_at": now.isoformat(),
        "shop": shop,
        "customers": [await _customer_document(session, customer) for customer in customers],
        # Kept by address, whichever customer (or none) it belongs to.
        "suppressions": [_suppression(row) for row in suppressions],
        "mail_feedback": [_feedback(event) for event in feedback],
    }


async def _customer_document(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    data = await repository.customer_data(session, customer)
    answers = await survey_answers(session, [message.id for message, _ in data["messages"]])
    return {
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
        # Opens and clicks of their mail, as recorded (a click names the link it followed).
        "tracking": [
            {
                "message_id": event.message_id,
                "kind": event.kind,
                "at": _time(event.occurred_at),
                "class": event.class_,
                "reason": event.reason,
                "url": url,
                "user_agent": event.user_agent,
                "network": event.ip,
            }
            for event, url in data["tracking"]
        ],
        "coupons": [
            {
                "message_id": coupon.message_id,
                "pool": coupon.pool,
                "code": coupon.code,
                "assigned_at": _time(coupon.assigned_at),
                "expires_at": _time(coupon.expires_at),
                "redeemed_at": _time(coupon.redeemed_at),
            }
            for coupon in data["coupons"]
        ],
        "suppressions": [_suppression(row) for row in data["suppressions"]],
        "consent_changes": [
            {"change": row.change, "source": row.source, "at": _time(row.at)}
            for row in await consent.consent_changes(session, customer.id)
        ],
        # Bounces and complaints reported about their mail (docs/deliverability.md).
        "mail_feedback": [_feedback(event) for event in data["mail_feedback"]],
    }


def _suppression(row: Suppression) -> dict[str, Any]:
    return {"email": row.email, "reason": row.reason, "created_at": _time(row.created_at)}


def _feedback(event: MailFeedbackEvent) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "provider": event.provider,
        "kind": event.kind,
        "recipient": event.recipient,
        "detail": event.detail,
        "received_at": _time(event.received_at),
    }


async def erase_customer(session: AsyncSession, *, customer_id: int, now: datetime) -> int:
    """Cancel what is waiting for the customer, then erase their personal data everywhere.
    Returns how many messages were cancelled."""
    cancelled = await outbox.cancel_pending(
        session, customer_id=customer_id, reason="customer_deleted"
    )
    await repository.erase_customer(session, customer_id=customer_id, now=now)
    return cancelled


async def erase_person(
    session: AsyncSession, *, shop: str, customer: CustomerRef, now: datetime
) -> int:
    """A shop's `customer.deleted`: erase its customer with this id and every one of its
    customers at this address (guest checkouts are customers of their own), and the raw
    bodies that name the address. Returns how many messages were cancelled."""
    ids = set()
    found = await repository.find_customer(session, shop=shop, external_id=customer.id)
    if found is not None:
        ids.add(found.id)
    if customer.email:
        ids.update(await repository.customer_ids_by_email(session, shop=shop, email=customer.email))
    cancelled = 0
    for erased in sorted(ids):
        cancelled += await erase_customer(session, customer_id=erased, now=now)
    if customer.email:
        # Also when nobody was found: the request's own body, and any other, names them.
        await repository.blank_bodies_naming(session, shop=shop, email=customer.email)
    return cancelled


async def erase_shop(session: AsyncSession, *, shop: str, now: datetime) -> int:
    """A shop uninstalled us (Shopify `shop/redact`): erase every customer and raw body."""
    cancelled = 0
    for customer_id in await repository.shop_customer_ids(session, shop=shop):
        cancelled += await erase_customer(session, customer_id=customer_id, now=now)
    await repository.erase_shop_deliveries(session, shop=shop)
    await repository.erase_shop_requests(session, shop=shop)
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


async def queued_for(session: AsyncSession, *, shop: str, external_id: str) -> bool:
    """Whether the intake queue may still hold a delivery about this customer (queued
    intake): an erasure must wait for it rather than find no one."""
    return await repository.queued_delivery_mentions(session, shop=shop, external_id=external_id)


async def find(session: AsyncSession, *, shop: str, external_id: str) -> int | None:
    customer = await repository.find_customer(session, shop=shop, external_id=external_id)
    return customer.id if customer else None
