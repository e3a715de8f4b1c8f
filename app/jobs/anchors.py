"""Plan date-anchored messages ("when the child turns 7") from customer data that changed.

Orders plan their anchored messages when they arrive, from the dates known then. This job
picks up dates added or changed later (a customer.updated with a child's birth date): it
re-plans every customer updated within LOOKBACK, idempotently, so every worker may run it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app.db import transaction
from app.models import Customer
from app.orders.service import replan_anchors
from app.runtime import Runtime

log = logging.getLogger(__name__)

# Longer than the job's interval, so a missed run (restart, outage) loses nothing.
LOOKBACK = timedelta(days=2)
PAGE = 500


async def plan_anchor_messages(runtime: Runtime, *, lookback: timedelta = LOOKBACK) -> int:
    rules = runtime.rules.current
    if not any(rule.send.anchor is not None for rule in rules.rules):
        return 0
    now = runtime.clock.now()
    created, last_id = 0, 0
    while True:
        async with transaction(runtime.session_factory) as session:
            page = list(
                (
                    await session.execute(
                        select(Customer.id)
                        .where(
                            Customer.updated_at >= now - lookback,
                            Customer.deleted_at.is_(None),
                            Customer.id > last_id,
                        )
                        .order_by(Customer.id)
                        .limit(PAGE)
                    )
                ).scalars()
            )
            for customer_id in page:
                created += await replan_anchors(
                    session,
                    customer_id=customer_id,
                    rules=rules,
                    now=now,
                    default_tz=runtime.settings.default_time_zone,
                )
        if len(page) < PAGE:
            break
        last_id = page[-1]
    if created:
        log.info("planned %d date-anchored messages", created)
    return created
