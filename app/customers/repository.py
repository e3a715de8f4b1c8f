"""SQL for privacy requests: everything held about a customer, and whole-shop erasure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    ConsentChange,
    CouponCode,
    Customer,
    MailFeedbackEvent,
    Message,
    MessageAttempt,
    Order,
    OrderItem,
    PrivacyRequest,
    Suppression,
    TrackedLink,
    TrackingEvent,
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


async def erase_shop_requests(session: AsyncSession, *, shop: str) -> None:
    """The exports produced for the shop's data requests are its customers' data."""
    await session.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.shop == shop)
        .values(export=null(), customer_ref=None)
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
    suppressions = await suppressions_of(session, customer.email) if customer.email else []
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
    message_ids = [message.id for message in messages]
    return {
        "customer": customer,
        "mail_feedback": feedback,
        "tracking": await tracking_of(session, message_ids),
        "coupons": await coupons_of(session, message_ids),
        "orders": [(order, items.get(order.id, [])) for order in orders],
        "messages": [(message, attempts.get(message.id, [])) for message in messages],
        "deliveries": deliveries,
        "suppressions": suppressions,
    }


async def tracking_of(
    session: AsyncSession, message_ids: Sequence[int]
) -> list[tuple[TrackingEvent, str | None]]:
    """The opens and clicks of these messages, each with the URL of the link clicked."""
    if not message_ids:
        return []
    rows = await session.execute(
        select(TrackingEvent, TrackedLink.url)
        .outerjoin(TrackedLink, TrackedLink.id == TrackingEvent.link_id)
        .where(TrackingEvent.message_id.in_(message_ids))
        .order_by(TrackingEvent.id)
    )
    return [(event, url) for event, url in rows.all()]


async def coupons_of(session: AsyncSession, message_ids: Sequence[int]) -> list[CouponCode]:
    if not message_ids:
        return []
    statement = (
        select(CouponCode).where(CouponCode.message_id.in_(message_ids)).order_by(CouponCode.id)
    )
    return list((await session.execute(statement)).scalars())


async def suppressions_of(session: AsyncSession, email: str) -> list[Suppression]:
    """The address's suppressions, as kept: lower-cased, or as its digest once erased."""
    keys = [email.strip().lower(), email_digest(email)]
    statement = select(Suppression).where(Suppression.email.in_(keys)).order_by(Suppression.id)
    return list((await session.execute(statement)).scalars())


async def feedback_naming(session: AsyncSession, email: str) -> list[MailFeedbackEvent]:
    """Bounce and complaint reports that name the address (whoever's message they are about)."""
    statement = (
        select(MailFeedbackEvent)
        .where(MailFeedbackEvent.recipient == email.strip().lower())
        .order_by(MailFeedbackEvent.id)
    )
    return list((await session.execute(statement)).scalars())


# -- platform data requests (Shopify customers/data_request) ---------------------------------


def add_privacy_request(session: AsyncSession, request: PrivacyRequest) -> None:
    session.add(request)


async def list_privacy_requests(
    session: AsyncSession, *, before_id: int | None, limit: int
) -> list[PrivacyRequest]:
    statement = select(PrivacyRequest).order_by(PrivacyRequest.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(PrivacyRequest.id < before_id)
    return list((await session.execute(statement)).scalars())


async def get_privacy_request(session: AsyncSession, request_id: int) -> PrivacyRequest | None:
    return await session.get(PrivacyRequest, request_id)


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
