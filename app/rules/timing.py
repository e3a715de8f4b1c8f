"""When a rule's message is due, from its anchor and the items it is about. Pure.

Ranges are placed by quantity: one unit sends at the start of the range, and each further
unit moves the send toward its end ((q − 1) / q of the way), because a bigger pack lasts
longer. `supply` is exact: quantity × days_per_unit, less the lead time. Then `send.time`
sets the local time of day on that local date, and the send window moves the send to the
first allowed instant at or after it, in the customer's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.rules.durations import Duration, parse_duration
from app.rules.facts import ItemFacts
from app.rules.model import Rule
from app.rules.windows import at_local_time, next_send_time


def range_position(quantity: int) -> float:
    return (quantity - 1) / quantity if quantity > 0 else 0.0


def send_time(
    rule: Rule, *, anchor: datetime, items: Sequence[ItemFacts], tz: ZoneInfo
) -> datetime:
    """The UTC send time: the delay, then the local time of day, then the send window."""
    due = _due(rule, anchor=anchor, items=items)
    if rule.send.time is not None:
        # "after: 3d, time: 10:00" means 10:00 on the third local day, so the time may fall
        # before the exact delay; it never falls before the event itself (then: next day).
        hour, minute = (int(part) for part in rule.send.time.split(":"))
        day = due.astimezone(tz).date()
        due = at_local_time(day, time(hour, minute), tz=tz)
        if due < anchor:
            due = at_local_time(day + timedelta(days=1), time(hour, minute), tz=tz)
    window = rule.send_window.window if rule.send_window else None
    return next_send_time(due, window=window, tz=tz)


def _due(rule: Rule, *, anchor: datetime, items: Sequence[ItemFacts]) -> datetime:
    quantity = sum(item.quantity for item in items) or 1
    supply = rule.send.supply
    if supply is not None:
        lead = parse_duration(supply.lead)
        run_out = anchor + timedelta(days=quantity * supply.days_per_unit)
        return Duration(months=-lead.months, seconds=-lead.seconds).add_to(run_out)
    return rule.send.delay.at(anchor, range_position(quantity))
