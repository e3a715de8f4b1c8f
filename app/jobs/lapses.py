"""Plan win-back messages for regulars who went quiet (`customer.lapsed`), ahead of time.

A regular's lapse moment is their last standing order plus their usual interval (the median
gap, app/planner/customers.py); the job plans the message once its send time is within
HORIZON. Idempotent (one message per rule, customer and last order), so every worker may run
it; a new order cancels the waiting one at intake (app/lifecycle/flows.py).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.models import Customer, Order, OrderStatus
from app.outbox.planned import insert_planned
from app.planner.customers import LAPSE_ORDERS, LAPSED, plan_lapses
from app.rules.facts import CustomerFacts
from app.runtime import Runtime

log = logging.getLogger(__name__)

# Longer than the job's interval (6 h), so a missed run loses nothing; short enough that few
# planned win-backs are cancelled by the customer's own return.
HORIZON = timedelta(days=7)
PAGE = 1000


async def plan_lapse_messages(runtime: Runtime, *, horizon: timedelta = HORIZON) -> int:
    """Plan every lapse message due within `horizon`; returns how many were new. Two
    statements per page of customers, and one insert per message planned."""
    rules = runtime.rules.current
    if not rules.for_event(LAPSED):
        return 0
    now = runtime.clock.now()
    default_tz = runtime.settings.default_time_zone
    created, last_id = 0, 0
    while True:
        async with transaction(runtime.session_factory) as session:
            page = (
                await session.execute(
                    select(
                        Customer.id,
                        Customer.time_zone,
                        Customer.locale,
                        Customer.country,
                        Customer.tags,
                        Customer.shop,
                        Customer.external_id,
                    )
                    .where(Customer.deleted_at.is_(None), Customer.id > last_id)
                    .order_by(Customer.id)
                    .limit(PAGE)
                )
            ).all()
            orders = await _latest_orders(session, [row[0] for row in page])
            for customer_id, time_zone, locale, country, tags, shop, external_id in page:
                theirs = orders.get(customer_id)
                if not theirs:
                    continue
                planned = plan_lapses(
                    rules=rules,
                    customer_id=customer_id,
                    orders=theirs,
                    tz=ZoneInfo(time_zone or default_tz),
                    now=now,
                    horizon=horizon,
                    customer=CustomerFacts(
                        locale=locale,
                        country=country,
                        tags=tuple(tags),
                        key=f"{shop}:{external_id}",
                    ),
                )
                if planned:
                    # About their last order (its items show in the mail; its refund ends it).
                    last_order_id = max(theirs, key=lambda order: (order[1], order[0]))[0]
                    created += await insert_planned(
                        session, planned, customer_id=customer_id, order_id=last_order_id
                    )
        if len(page) < PAGE:
            break
        last_id = page[-1][0]
    if created:
        log.info("planned %d lapse messages", created)
    return created


async def _latest_orders(
    session: AsyncSession, customer_ids: Collection[int]
) -> dict[int, list[tuple[int, datetime]]]:
    """Each customer's latest LAPSE_ORDERS standing orders, (id, placed at). One statement."""
    if not customer_ids:
        return {}
    numbered = (
        select(
            Order.customer_id,
            Order.id,
            Order.placed_at,
            func.row_number()
            .over(
                partition_by=Order.customer_id,
                order_by=(Order.placed_at.desc(), Order.id.desc()),
            )
            .label("number"),
        )
        .where(
            Order.customer_id.in_(customer_ids),
            Order.placed_at.is_not(None),
            Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
        )
        .subquery()
    )
    rows = await session.execute(
        select(numbered.c.customer_id, numbered.c.id, numbered.c.placed_at).where(
            numbered.c.number <= LAPSE_ORDERS
        )
    )
    found: dict[int, list[tuple[int, datetime]]] = {}
    for customer_id, order_id, placed_at in rows:
        found.setdefault(customer_id, []).append((order_id, placed_at))
    return found
