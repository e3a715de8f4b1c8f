"""When a rule's message is due, from its anchor and the items it is about. Pure.

Ranges are placed by quantity: one unit sends at the start of the range, and each further
unit moves the send toward its end ((q − 1) / q of the way), because a bigger pack lasts
longer. `supply` is exact: quantity × days_per_unit, less the lead time. Then `send.time`
sets the local time of day on that local date, and the send window moves the send to the
first allowed instant at or after it, in the customer's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.rules.durations import Duration, parse_duration, parse_range
from app.rules.facts import ItemFacts
from app.rules.model import Rule
from app.rules.windows import at_local_time, next_send_time


def range_position(quantity: int) -> float:
    return (quantity - 1) / quantity if quantity > 0 else 0.0


DEFAULT_DATED_TIME = time(10, 0)


def send_time(
    rule: Rule, *, anchor: datetime, items: Sequence[ItemFacts], tz: ZoneInfo
) -> datetime:
    """The UTC send time: the delay, then the local time of day, then the send window."""
    return localise(rule, _due(rule, anchor=anchor, items=items), anchor=anchor, tz=tz)


def fallback_send_time(
    rule: Rule, *, anchor: datetime, items: Sequence[ItemFacts], tz: ZoneInfo
) -> datetime:
    """For an anchored rule without a date: its `fallback.after`, like a plain `after`."""
    assert rule.send.fallback is not None
    position = range_position(sum(item.quantity for item in items) or 1)
    due = parse_range(rule.send.fallback.after).at(anchor, position)
    return localise(rule, due, anchor=anchor, tz=tz)


def dated_send_time(rule: Rule, *, day: date, tz: ZoneInfo) -> datetime:
    """`at` from a date (a birthday, a child's birth date), at `time` or 10:00 local."""
    offset = parse_duration(rule.send.at or "0d")
    send_day = offset.add_to(datetime.combine(day, time(0))).date()
    at = _time_of_day(rule.send.time) or DEFAULT_DATED_TIME
    window = rule.send_window.window if rule.send_window else None
    return next_send_time(at_local_time(send_day, at, tz=tz), window=window, tz=tz)


def localise(rule: Rule, due: datetime, *, anchor: datetime, tz: ZoneInfo) -> datetime:
    at = _time_of_day(rule.send.time)
    if at is not None:
        # "after: 3d, time: 10:00" means 10:00 on the third local day, so the time may fall
        # before the exact delay; it never falls before the event itself (then: next day).
        day = due.astimezone(tz).date()
        due = at_local_time(day, at, tz=tz)
        if due < anchor:
            due = at_local_time(day + timedelta(days=1), at, tz=tz)
    window = rule.send_window.window if rule.send_window else None
    return next_send_time(due, window=window, tz=tz)


def _time_of_day(text: str | None) -> time | None:
    if text is None:
        return None
    hour, minute = (int(part) for part in text.split(":"))
    return time(hour, minute)


def _due(rule: Rule, *, anchor: datetime, items: Sequence[ItemFacts]) -> datetime:
    quantity = sum(item.quantity for item in items) or 1
    supply = rule.send.supply
    if supply is not None:
        lead = parse_duration(supply.lead)
        run_out = anchor + timedelta(days=quantity * supply.days_per_unit)
        return Duration(months=-lead.months, seconds=-lead.seconds).add_to(run_out)
    return rule.send.delay.at(anchor, range_position(quantity))
