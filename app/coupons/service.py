"""Coupons: import a pool's codes, hand one to a message as it is sent, link the orders
that use them. Services take a session and never commit, except `take_coupon`, which the
dispatcher calls between its own short transactions."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.coupons import repository
from app.coupons.codes import CodeLine, IssuedCoupon, code_key
from app.coupons.repository import PoolCounts
from app.db import transaction
from app.models import Order
from app.ops.metrics import count_coupon_pool_empty

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    added: int
    already_in_pool: int


async def import_codes(
    session: AsyncSession,
    *,
    pool: str,
    shop: str | None,
    codes: Sequence[CodeLine],
    now: datetime,
) -> ImportResult:
    """Add the codes to the pool; those it has already (or that repeat) are counted apart."""
    added = await repository.add_codes(session, pool=pool, shop=shop, codes=codes, now=now)
    return ImportResult(added=added, already_in_pool=len(codes) - added)


async def take_coupon(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    message_id: int,
    pool: str,
    shop: str,
    now: datetime,
) -> IssuedCoupon | None:
    """The message's code: the one it holds already (a retry), else the pool's next free one
    for its shop, committed before the mail goes out. None when the pool has none left.

    Each step is its own transaction whose first statement is the write, so SQLite takes
    its write lock at once; a code once handed out stays with its message even if the send
    fails, and is never given to another.
    """
    async with session_factory() as session:
        held = await repository.held_code(session, message_id=message_id)
    if held is not None:
        return held
    try:
        async with transaction(session_factory) as session:
            taken = await repository.claim_free_code(
                session, message_id=message_id, pool=pool, shop=shop, now=now
            )
    except IntegrityError:
        # Another worker took a code for this same message at the same moment (its lease
        # ran out): the unique message_id kept it to one, and that one is the message's.
        async with session_factory() as session:
            taken = await repository.held_code(session, message_id=message_id)
    if taken is None:
        # Ids only: no address or name goes to the log.
        log.warning("coupon pool %s has no free code for message %s", pool, message_id)
        count_coupon_pool_empty(pool)
    return taken


async def redeem_order_codes(session: AsyncSession, *, order: Order, codes: Iterable[str]) -> int:
    """Link the order to the mailed codes it used (once: a code serves its first order)."""
    keys = {code_key(code) for code in codes if code.strip()}
    if not keys:
        return 0
    return await repository.redeem_codes(
        session,
        order_id=order.id,
        shop=order.shop,
        keys=keys,
        at=order.placed_at or order.created_at,
    )


async def pool_status(
    session: AsyncSession, *, now: datetime, pool: str | None = None
) -> list[PoolCounts]:
    return await repository.pool_counts(session, now=now, pool=pool)
