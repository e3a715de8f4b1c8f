"""When a rule's message is due, from its anchor and the items it is about. Pure.

Ranges are placed by quantity: one unit sends at the start of the range, and each further
unit moves the send toward its end ((q − 1) / q of the way), because a bigger pack lasts
longer. `supply` is exact: quantity × days_per_unit, less the lead time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from app.rules.durations import Duration, parse_duration
from app.rules.facts import ItemFacts
from app.rules.model import Rule


def range_position(quantity: int) -> float:
    return (quantity - 1) / quantity if quantity > 0 else 0.0


def send_time(rule: Rule, *, anchor: datetime, items: Sequence[ItemFacts]) -> datetime:
    quantity = sum(item.quantity for item in items) or 1
    supply = rule.send.supply
    if supply is not None:
        lead = parse_duration(supply.lead)
        run_out = anchor + timedelta(days=quantity * supply.days_per_unit)
        return Duration(months=-lead.months, seconds=-lead.seconds).add_to(run_out)
    return rule.send.delay.at(anchor, range_position(quantity))
