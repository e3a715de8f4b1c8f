"""All SQL of product reviews: the item a token rates, the review row, its reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer, Message, OrderItem, ProductReview
from app.statuses import EventClass


@dataclass(frozen=True)
class ReviewTarget:
    """The message and order item a review link names, with what the pages and the
    follow-up rules need of its customer."""

    message_id: int
    sent_at: datetime | None
    rule_id: str
    customer_id: int
    order_id: int | None
    locale: str | None
    customer_erased: bool
    item: OrderItem


async def review_target(
    session: AsyncSession, *, message_id: int, position: int, lock: bool = False
) -> ReviewTarget | None:
    """None when the message or its order's item at `position` is gone. `lock` holds the
    message row (PostgreSQL), so clicks on one message are recorded one after another."""
    statement = (
        select(
            Message.id,
            Message.sent_at,
            Message.rule_id,
            Message.customer_id,
            Message.order_id,
            Customer.locale,
            Customer.deleted_at.is_not(None),
            OrderItem,
        )
        .join(Customer, Customer.id == Message.customer_id)
        .join(OrderItem, OrderItem.order_id == Message.order_id)
        .where(Message.id == message_id, OrderItem.position == position)
    )
    if lock:
        statement = statement.with_for_update(of=Message)
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else ReviewTarget(*row)


async def review_of(
    session: AsyncSession, *, message_id: int, position: int
) -> ProductReview | None:
    return (
        await session.execute(
            select(ProductReview).where(
                ProductReview.message_id == message_id,
                ProductReview.item_position == position,
            )
        )
    ).scalar_one_or_none()


def new_review(target: ReviewTarget, **values: Any) -> ProductReview:
    item = target.item
    return ProductReview(
        message_id=target.message_id,
        customer_id=target.customer_id,
        order_id=target.order_id,
        item_position=item.position,
        product_ref=item.product_ref,
        variant_ref=item.variant_ref,
        sku=item.sku,
        name=item.name,
        category=item.category,
        catalog_product_id=item.catalog_product_id,
        **values,
    )


async def add_review(session: AsyncSession, review: ProductReview) -> ProductReview:
    session.add(review)
    await session.flush()
    return review


@dataclass(frozen=True)
class ReviewFilter:
    """Which reviews `list_reviews` reads; None is no condition."""

    product: str | None = None  # the platform's product id, or a sku
    min_stars: int | None = None
    max_stars: int | None = None
    commented: bool | None = None
    counted_only: bool = True


async def list_reviews(
    session: AsyncSession, *, where: ReviewFilter, before_id: int | None, limit: int
) -> list[ProductReview]:
    """Reviews newest first, `limit` at most, ids below `before_id`."""
    statement = select(ProductReview).order_by(ProductReview.id.desc()).limit(limit)
    product = where.product
    conditions = [
        (
            product is not None,
            (ProductReview.product_ref == product) | (ProductReview.sku == product),
        ),
        (where.min_stars is not None, ProductReview.stars >= (where.min_stars or 0)),
        (where.max_stars is not None, ProductReview.stars <= (where.max_stars or 0)),
        (where.counted_only, ProductReview.class_ == EventClass.HUMAN.value),
        (where.commented is True, ProductReview.comment.is_not(None)),
        (where.commented is False, ProductReview.comment.is_(None)),
        (before_id is not None, ProductReview.id < (before_id or 0)),
    ]
    for applies, condition in conditions:
        if applies:
            statement = statement.where(condition)
    return list((await session.execute(statement)).scalars())


ReviewsBy = Literal["product", "category"]


async def star_counts(
    session: AsyncSession, *, start: datetime, end: datetime
) -> list[tuple[str | None, str | None, str | None, str | None, int, int]]:
    """(product_ref, sku, name, category, stars, reviews) of the people's reviews given in
    [start, end); counted in SQL, so the rows are at most five per product."""
    statement = (
        select(
            ProductReview.product_ref,
            ProductReview.sku,
            func.max(ProductReview.name),
            ProductReview.category,
            ProductReview.stars,
            func.count(),
        )
        .where(
            ProductReview.class_ == EventClass.HUMAN.value,
            ProductReview.answered_at >= start,
            ProductReview.answered_at < end,
        )
        .group_by(
            ProductReview.product_ref,
            ProductReview.sku,
            ProductReview.category,
            ProductReview.stars,
        )
    )
    rows = await session.execute(statement)
    return [
        (ref, sku, name, category, int(stars), int(n))
        for ref, sku, name, category, stars, n in rows
    ]
