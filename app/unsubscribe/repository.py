"""SQL for the unsubscribe pages: whom a token names, and their locale."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Customer


async def customer(session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.get(Customer, customer_id)


async def customer_locale(session: AsyncSession, *, shop: str, email: str) -> str | None:
    """The locale of the shop's customer with this address (the latest updated, if several)."""
    return (
        await session.execute(
            select(Customer.locale)
            .where(Customer.shop == shop, Customer.email == email.lower())
            .order_by(Customer.updated_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
