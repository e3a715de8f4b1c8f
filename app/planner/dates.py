"""Date events -> planned messages: birthdays every year. Pure: the caller gives `now`.

A birthday on 29 February is celebrated on 28 February in other years. Without `send.time`
a date-anchored message goes at 10:00 in the customer's time zone, never at midnight.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.planner.planner import PlannedMessage, held_out_steps, planned_message
from app.rules.facts import CustomerFacts
from app.rules.loader import RuleSet
from app.rules.timing import dated_send_time

# A daily job can run late (restart, outage): still plan what fell due within this much.
LATE_GRACE = timedelta(days=1)


def birthday_in(birthday: date, year: int) -> date:
    if birthday.month == 2 and birthday.day == 29 and not _leap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def plan_birthdays(
    *,
    rules: RuleSet,
    customer_id: int,
    birthday: date,
    tz: ZoneInfo,
    now: datetime,
    horizon: timedelta,
    customer: CustomerFacts | None = None,
) -> list[PlannedMessage]:
    """Messages for birthday occurrences whose send time falls in [now − grace, now + horizon]."""
    planned = []
    local_year = now.astimezone(tz).year
    for rule in rules.for_event("birthday"):
        if rule.when.customer is not None and not rule.when.customer.matches(customer):
            continue
        for year in (local_year - 1, local_year, local_year + 1):
            send_at = dated_send_time(rule, day=birthday_in(birthday, year), tz=tz)
            if not now - LATE_GRACE <= send_at <= now + horizon:
                continue
            message = planned_message(
                rule,
                send_at=send_at,
                dedupe_key=f"{rule.id}:birthday:{year}:customer:{customer_id}",
                customer_key=customer.key if customer and customer.key else str(customer_id),
                event_at=send_at,
            )
            planned += [message, *held_out_steps(rule, message, tz=tz)]
    return planned


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
