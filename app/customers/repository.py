"""SQL for privacy requests: everything held about a customer, and whole-shop erasure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    ConsentChange,
    Customer,
    MailFeedbackEvent,
    Message,
    MessageAttempt,
    Order,
    OrderItem,
    Suppression,
    WebhookDelivery,
)
from app.privacy import email_digest


async def find_customer(session: AsyncSession, *, shop: str, external_id: str) -> Customer | None:
    statement = select(Customer).where(Customer.shop == shop, Customer.external_id == external_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def shop_customer_ids(session: AsyncSession, *, shop: str) -> Sequence[int]:
    return (await session.execute(select(Customer.id).where(Customer.shop == shop))).scalars().all()


async def erase_shop_deliveries(session: AsyncSession, *, shop: str) -> None:
    """Raw bodies of a shop that are linked to no customer still hold order data."""
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.shop == shop)
        .values(body="")
        .execution_options(synchronize_session=False)
    )


async def customer_data(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    orders = (
        (
            await session.execute(
                select(Order).where(Order.customer_id == customer.id).order_by(Order.id)
            )
        )
        .scalars()
        .all()
    )
    items: dict[int, list[OrderItem]] = {}
    if orders:
        rows = await session.execute(
            select(OrderItem)
            .where(OrderItem.order_id.in_([order.id for order in orders]))
            .order_by(OrderItem.order_id, OrderItem.position)
        )
        for item in rows.scalars():
            items.setdefault(item.order_id, []).append(item)
    messages = (
        (
            await session.execute(
                select(Message).where(Message.customer_id == customer.id).order_by(Message.id)
            )
        )
        .scalars()
        .all()
    )
    attempts: dict[int, list[MessageAttempt]] = {}
    if messages:
        attempt_rows = await session.execute(
            select(MessageAttempt)
            .where(MessageAttempt.message_id.in_([message.id for message in messages]))
            .order_by(MessageAttempt.id)
        )
        for attempt in attempt_rows.scalars():
            attempts.setdefault(attempt.message_id, []).append(attempt)
    deliveries = (
        (
            await session.execute(
                select(WebhookDelivery)
                .where(WebhookDelivery.customer_id == customer.id)
                .order_by(WebhookDelivery.id)
            )
        )
        .scalars()
        .all()
    )
    suppressions: Sequence[Suppression] = []
    if customer.email:
        keys = [customer.email.lower(), email_digest(customer.email)]
        suppressions = (
            (await session.execute(select(Suppression).where(Suppression.email.in_(keys))))
            .scalars()
            .all()
        )
    # Bounces and complaints about their messages, or naming their address.
    about: ColumnElement[bool] = MailFeedbackEvent.message_id.in_([m.id for m in messages])
    if customer.email:
        about = or_(about, MailFeedbackEvent.recipient == customer.email.lower())
    feedback = (
        (
            await session.execute(
                select(MailFeedbackEvent).where(about).order_by(MailFeedbackEvent.id)
            )
        )
        .scalars()
        .all()
    )
    return {
        "customer": customer,
        "mail_feedback": feedback,
        "orders": [(order, items.get(order.id, [])) for order in orders],
        "messages": [(message, attempts.get(message.id, [])) for message in messages],
        "deliveries": deliveries,
        "suppressions": suppressions,
    }


# -- marketing consent changed by the customer (app/customers/consent.py) -------------------


async def customers_at(
    session: AsyncSession, *, emails: Sequence[str], shop: str | None
) -> list[Customer]:
    """The customers (not erased) at these addresses, of `shop` or of every shop."""
    statement = select(Customer).where(
        Customer.email.in_([email.lower() for email in emails]), Customer.deleted_at.is_(None)
    )
    if shop is not None:
        statement = statement.where(Customer.shop == shop)
    return list((await session.execute(statement.order_by(Customer.id))).scalars())


async def set_marketing(
    session: AsyncSession, ids: Sequence[int], *, consent: bool, opt_out_at: datetime | None
) -> None:
    await session.execute(
        update(Customer)
        .where(Customer.id.in_(ids))
        .values(marketing_consent=consent, marketing_opt_out_at=opt_out_at)
        .execution_options(synchronize_session=False)
    )


async def add_consent_changes(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(ConsentChange), list(rows))


async def consent_changes(session: AsyncSession, customer_id: int) -> list[ConsentChange]:
    statement = (
        select(ConsentChange)
        .where(ConsentChange.customer_id == customer_id)
        .order_by(ConsentChange.id)
    )
    return list((await session.execute(statement)).scalars())
