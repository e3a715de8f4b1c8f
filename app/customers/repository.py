"""SQL for privacy requests: everything held about a customer, and erasure of a customer or
a whole shop."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db import LIKE_ESCAPE, containing
from app.erasures import record_erasure
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
    ProductReview,
    Suppression,
    SurveyAnswer,
    TrackedLink,
    TrackingEvent,
    WebhookDelivery,
)
from app.outbox import planned as outbox
from app.privacy import email_digest
from app.suppressions.repository import forget_removed_address


async def find_customer(session: AsyncSession, *, shop: str, external_id: str) -> Customer | None:
    statement = select(Customer).where(Customer.shop == shop, Customer.external_id == external_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def search_customers(
    session: AsyncSession, *, text: str, before_id: int | None, limit: int
) -> list[tuple[Customer, int]]:
    """Customers whose address or name contains `text`, or whose shop id is it; newest
    first, keyset-paged by row id, each with their order count."""
    needle = text.strip().lower()
    pattern = containing(needle)
    orders = select(func.count(Order.id)).where(Order.customer_id == Customer.id).scalar_subquery()
    statement = select(Customer, orders).order_by(Customer.id.desc()).limit(limit)
    if needle:
        statement = statement.where(
            or_(
                Customer.email.like(pattern, escape=LIKE_ESCAPE),
                Customer.external_id == text.strip(),
                func.lower(
                    func.coalesce(Customer.first_name, "")
                    + " "
                    + func.coalesce(Customer.last_name, "")
                ).like(pattern, escape=LIKE_ESCAPE),
            )
        )
    if before_id is not None:
        statement = statement.where(Customer.id < before_id)
    return [(row[0], row[1]) for row in (await session.execute(statement)).all()]


async def customer_by_row(session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.get(Customer, customer_id)


async def shop_customer_ids(session: AsyncSession, *, shop: str) -> Sequence[int]:
    return (await session.execute(select(Customer.id).where(Customer.shop == shop))).scalars().all()


async def customer_ids_by_email(session: AsyncSession, *, shop: str, email: str) -> list[int]:
    statement = select(Customer.id).where(Customer.shop == shop, Customer.email == email.lower())
    return list((await session.execute(statement)).scalars())


async def erase_customer(session: AsyncSession, *, customer_id: int, now: datetime) -> None:
    """Remove personal data wherever it lives: the customer, their orders and items, their
    messages and delivery history, the raw webhook bodies that carried it. Rows and counts
    stay (orders, totals, message statuses), so stats keep adding up."""
    statement = select(Customer).where(Customer.id == customer_id)
    customer = (await session.execute(statement)).scalar_one()
    email, external_id = customer.email, customer.external_id
    if customer.deleted_at is None:
        # Digests only, so that what arrives about them later stores nothing (app/erasures.py).
        await record_erasure(
            session, shop=customer.shop, external_id=customer.external_id, email=email, at=now
        )
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(
            # The shop's id for them is theirs too; freed, so that a new order after the
            # erasure makes a new customer (docs/privacy.md).
            external_id=f"erased:{customer_id}",
            email=None,
            first_name=None,
            last_name=None,
            birthday=None,
            attributes={},
            tags=[],
            locale=None,
            time_zone=None,
            country=None,
            marketing_consent=False,
            deleted_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    orders = select(Order.id).where(Order.customer_id == customer_id).scalar_subquery()
    # Order attributes can hold personal text too (a gift message).
    await _update(session, Order, Order.customer_id == customer_id, email=None, attributes={})
    # Item attributes can hold personal text (an engraving, a child's name).
    await _update(session, OrderItem, OrderItem.order_id.in_(orders), attributes={})
    await outbox.erase_recipient(session, customer_id=customer_id)
    messages = select(Message.id).where(Message.customer_id == customer_id).scalar_subquery()
    await _update(session, WebhookDelivery, WebhookDelivery.customer_id == customer_id, body="")
    # Tracking keeps its counts (class, reason, time), not who and where: links can carry
    # personal query strings, user agents and network prefixes identify people.
    await _update(session, TrackedLink, TrackedLink.message_id.in_(messages), url=None)
    await _update(
        session, TrackingEvent, TrackingEvent.message_id.in_(messages), user_agent=None, ip=None
    )
    # Survey answers keep their score (NPS adds up); the comment is the customer's own words.
    await _update(
        session,
        SurveyAnswer,
        SurveyAnswer.message_id.in_(messages),
        comment=None,
        commented_at=None,
        user_agent=None,
        ip=None,
    )
    # Product reviews keep their stars (product stats add up); the comment is their words.
    await _update(
        session,
        ProductReview,
        ProductReview.customer_id == customer_id,
        comment=None,
        commented_at=None,
        user_agent=None,
        ip=None,
    )
    # Exports produced for their data requests are all their data; the row stays (a request
    # was received and answered), not what it said about them.
    requested: ColumnElement[bool] = or_(
        PrivacyRequest.customer_id == customer_id,
        and_(PrivacyRequest.shop == customer.shop, PrivacyRequest.customer_ref == external_id),
    )
    if email:
        requested = or_(
            requested,
            and_(
                PrivacyRequest.shop == customer.shop, PrivacyRequest.subject == email_digest(email)
            ),
        )
    await _update(session, PrivacyRequest, requested, export=null(), customer_ref=None)
    # What the customer changed themselves stays (counts, times), not the address.
    await _update(session, ConsentChange, ConsentChange.customer_id == customer_id, email=None)
    # Bounces and complaints: counts and kinds stay; the address and the report text (which
    # quotes it) go, for the customer's messages and for reports that named only the address.
    about_customer: ColumnElement[bool] = MailFeedbackEvent.message_id.in_(messages)
    if email:
        about_customer = or_(about_customer, MailFeedbackEvent.recipient == email.lower())
    await _update(session, MailFeedbackEvent, about_customer, recipient=None, detail=None)
    if email:
        await _forget_suppressed_address(session, email)
        await forget_removed_address(session, email)
        await blank_bodies_naming(session, shop=customer.shop, email=email)


async def blank_bodies_naming(session: AsyncSession, *, shop: str, email: str) -> None:
    """Raw bodies of the shop that name the address but were never linked to its customer:
    the erasure request's own, data requests, deliveries ignored or failed before a customer
    was known. A scan of the shop's retained bodies: erasures are rare."""
    await _update(
        session,
        WebhookDelivery,
        WebhookDelivery.shop == shop,
        WebhookDelivery.body != "",
        func.lower(WebhookDelivery.body).contains(email.strip().lower(), autoescape=True),
        body="",
    )


async def _forget_suppressed_address(session: AsyncSession, email: str) -> None:
    """Keep the suppression working, without the address: swap it for its digest."""
    digest = email_digest(email)
    existing = (
        await session.execute(select(Suppression).where(Suppression.email == email.lower()))
    ).scalar_one_or_none()
    if existing is None:
        return
    already = (
        await session.execute(select(Suppression.id).where(Suppression.email == digest))
    ).first()
    if already:
        await session.delete(existing)
    else:
        existing.email = digest
        existing.detail = None
    await session.flush()


async def _update(session: AsyncSession, table: Any, *where: Any, **values: Any) -> None:
    await session.execute(
        update(table).where(*where).values(**values).execution_options(synchronize_session=False)
    )


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


async def queued_delivery_mentions(session: AsyncSession, *, shop: str, external_id: str) -> bool:
    """Whether a delivery of the shop still waiting in the intake queue may be about this
    customer (its body holds the id): erasing "no such customer" then would not reach what
    the queue is about to store."""
    found = await session.execute(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.queued,
            WebhookDelivery.shop == shop,
            WebhookDelivery.body.like(containing(external_id), escape=LIKE_ESCAPE),
        )
        .limit(1)
    )
    return found.first() is not None
