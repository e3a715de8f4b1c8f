"""All SQL of coupons: adding codes, handing one to a message, linking redemptions, counts.

Functions flush at most; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.coupons.codes import CodeLine, IssuedCoupon, code_key
from app.db import dialect_insert
from app.models import CouponCode, Customer, Message

# Rows per INSERT: far below either database's limit on parameters.
_CHUNK = 500


async def add_codes(
    session: AsyncSession,
    *,
    pool: str,
    shop: str | None,
    codes: Sequence[CodeLine],
    now: datetime,
) -> int:
    """Add the codes a pool does not have yet; returns how many were added.

    A code already in the pool is left as it is (its shop, expiry and use), so importing a
    file again changes nothing.
    """
    insert = dialect_insert(session)
    added = 0
    for start in range(0, len(codes), _CHUNK):
        rows = [
            {
                "pool": pool,
                "code": line.code,
                "code_key": code_key(line.code),
                "shop": shop,
                "expires_at": line.expires_at,
                "imported_at": now,
            }
            for line in codes[start : start + _CHUNK]
        ]
        statement = (
            insert(CouponCode)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["pool", "code"])
            .returning(CouponCode.id)
        )
        added += len((await session.execute(statement)).all())
    return added


async def held_code(session: AsyncSession, *, message_id: int) -> IssuedCoupon | None:
    """The code this message was given before (a retry keeps its code)."""
    row = (
        await session.execute(
            select(CouponCode.code, CouponCode.pool, CouponCode.expires_at).where(
                CouponCode.message_id == message_id
            )
        )
    ).first()
    return IssuedCoupon(*row) if row else None


async def claim_free_code(
    session: AsyncSession, *, message_id: int, pool: str, shop: str, now: datetime
) -> IssuedCoupon | None:
    """Give the message the pool's oldest free code for its shop, in one statement.

    On PostgreSQL the free row is locked with SKIP LOCKED, so concurrent workers each take
    a different code without waiting for each other; on SQLite the single UPDATE holds the
    database write lock. `message_id` is unique, so a message never holds two codes.
    """
    free = (
        select(CouponCode.id)
        .where(
            CouponCode.pool == pool,
            CouponCode.assigned_at.is_(None),
            or_(CouponCode.expires_at.is_(None), CouponCode.expires_at > now),
            or_(CouponCode.shop.is_(None), CouponCode.shop == shop),
        )
        # Import order: what ix_coupon_codes_free holds, so the first row is the answer.
        .order_by(CouponCode.imported_at, CouponCode.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        free = free.with_for_update(skip_locked=True)
    statement = (
        update(CouponCode)
        .where(CouponCode.id == free.scalar_subquery(), CouponCode.assigned_at.is_(None))
        .values(message_id=message_id, assigned_at=now)
        .returning(CouponCode.code, CouponCode.pool, CouponCode.expires_at)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).first()
    return IssuedCoupon(*row) if row else None


async def redeem_codes(
    session: AsyncSession, *, order_id: int, shop: str, keys: Collection[str], at: datetime
) -> int:
    """Link the order to the codes it used: codes of its shop (or of none) that a message
    to a customer of its shop carried, and that no order has used before."""
    if not keys:
        return 0
    shop_messages = (
        select(Message.id)
        .join(Customer, Customer.id == Message.customer_id)
        .where(Customer.shop == shop)
    )
    result = await session.execute(
        update(CouponCode)
        .where(
            CouponCode.code_key.in_(list(keys)),
            CouponCode.redeemed_order_id.is_(None),
            or_(CouponCode.shop.is_(None), CouponCode.shop == shop),
            CouponCode.message_id.in_(shop_messages),
        )
        .values(redeemed_order_id=order_id, redeemed_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PoolCounts:
    """A pool's codes: `total` = free + assigned + expired; `redeemed` are assigned ones."""

    pool: str
    total: int
    free: int
    assigned: int
    redeemed: int
    expired: int


async def pool_counts(
    session: AsyncSession, *, now: datetime, pool: str | None = None
) -> list[PoolCounts]:
    unassigned = CouponCode.assigned_at.is_(None)
    lapsed = and_(CouponCode.expires_at.is_not(None), CouponCode.expires_at <= now)

    statement = (
        select(
            CouponCode.pool,
            func.count(),
            func.count().filter(and_(unassigned, ~lapsed)),
            func.count(CouponCode.assigned_at),
            func.count(CouponCode.redeemed_at),
            func.count().filter(and_(unassigned, lapsed)),
        )
        .group_by(CouponCode.pool)
        .order_by(CouponCode.pool)
    )
    if pool is not None:
        statement = statement.where(CouponCode.pool == pool)
    return [PoolCounts(*row) for row in await session.execute(statement)]
