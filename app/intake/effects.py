"""The effects of intake outside the lifecycle, wired here (app/orders/effects.py): coupon
codes redeemed, conversions credited, customers erased."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.coupons.service import redeem_order_codes
from app.customers.service import erase_person
from app.events import CustomerRef
from app.orders.effects import IntakeEffects, OrderEffect, StoredOrder
from app.stats.attribution import AttributionPolicy
from app.stats.service import record_conversion


def intake_effects(*, attribution: AttributionPolicy | None) -> IntakeEffects:
    """`attribution`: how orders are credited to the mail before them (docs/stats.md); None
    credits nothing (a history import: the past was not brought by our mail)."""
    effects: list[OrderEffect] = [_redeem_codes]
    if attribution is not None:

        async def credit(session: AsyncSession, stored: StoredOrder) -> None:
            await record_conversion(
                session,
                order=stored.order,
                policy=attribution,
                new_order=stored.new_order,
                new_customer=stored.new_customer,
            )

        effects.append(credit)
    return IntakeEffects(erase_customer=_erase, order_stored=tuple(effects))


async def _redeem_codes(session: AsyncSession, stored: StoredOrder) -> None:
    # Codes our mail carried that this order used are linked to it (coupon attribution).
    await redeem_order_codes(session, order=stored.order, codes=stored.incoming.discount_codes)


async def _erase(session: AsyncSession, shop: str, customer: CustomerRef, now: datetime) -> int:
    return await erase_person(session, shop=shop, customer=customer, now=now)
