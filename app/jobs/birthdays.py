"""Plan birthday messages ahead of time. Idempotent: every worker may run it at once."""

from __future__ import annotations

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.db import transaction
from app.models import Customer
from app.outbox.planned import insert_planned
from app.planner.dates import plan_birthdays
from app.rules.facts import CustomerFacts
from app.runtime import Runtime

log = logging.getLogger(__name__)

HORIZON = timedelta(days=30)
PAGE = 1000


async def plan_birthday_messages(runtime: Runtime, *, horizon: timedelta = HORIZON) -> int:
    """Plan every birthday message due within `horizon`; returns how many were new."""
    rules = runtime.rules.current
    if not rules.for_event("birthday"):
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
                        Customer.birthday,
                        Customer.time_zone,
                        Customer.locale,
                        Customer.country,
                        Customer.tags,
                        Customer.shop,
                        Customer.external_id,
                    )
                    .where(
                        Customer.birthday.is_not(None),
                        Customer.deleted_at.is_(None),
                        Customer.id > last_id,
                    )
                    .order_by(Customer.id)
                    .limit(PAGE)
                )
            ).all()
            for customer_id, birthday, time_zone, locale, country, tags, shop, external_id in page:
                assert birthday is not None  # filtered in the query
                planned = plan_birthdays(
                    rules=rules,
                    customer_id=customer_id,
                    birthday=birthday,
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
                # The dedupe key holds the year: a rerun inserts nothing twice.
                created += await insert_planned(
                    session, planned, customer_id=customer_id, order_id=None
                )
        if len(page) < PAGE:
            break
        last_id = page[-1][0]
    if created:
        log.info("planned %d birthday messages", created)
    return created
