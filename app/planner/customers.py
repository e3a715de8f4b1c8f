"""Customer events -> planned messages: a new customer (`customer.created`) and a regular who
went quiet (`customer.lapsed`). Pure: the caller gives the times and the orders.

A lapse: a customer with at least LAPSE_MIN_ORDERS standing orders has a usual interval, the
median gap between consecutive ones (of their latest LAPSE_ORDERS; orders within MIN_GAP of
the one before are one visit, a forgotten item rather than a rhythm). They lapse when no
order came for that long after their last one: the lapse moment is last order + interval,
and a rule's `after` counts from there. One message per rule, customer and last order: a new
order makes a new last order (and cancels what waited for the old one, app/lifecycle/flows.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from app.planner.dates import LATE_GRACE
from app.planner.planner import PlannedMessage, held_out_steps, planned_message
from app.rules.facts import CustomerFacts
from app.rules.loader import RuleSet
from app.rules.timing import send_time

CREATED = "customer.created"
LAPSED = "customer.lapsed"
# Three orders give two gaps: one gap alone (two orders) is a coincidence more often than
# a rhythm, and a win-back sent on it would go to people who were never regulars.
LAPSE_MIN_ORDERS = 3
# The latest orders the usual interval is taken from: the recent habit, and a bounded read.
LAPSE_ORDERS = 12
# A second order within a day of the one before is the same visit, not a gap.
MIN_GAP = timedelta(days=1)


def created_key(rule_id: str, *, customer_id: int) -> str:
    return f"{rule_id}:created:customer:{customer_id}"


def lapse_key(rule_id: str, *, customer_id: int, last_order_id: int) -> str:
    return f"{rule_id}:lapsed:customer:{customer_id}:after:{last_order_id}"


def plan_customer_created(
    *,
    rules: RuleSet,
    customer_id: int,
    at: datetime,
    tz: ZoneInfo,
    customer: CustomerFacts,
    orders: int = 0,
) -> list[PlannedMessage]:
    """One message per `customer.created` rule the customer matches, timed from `at`.
    `orders`: their standing orders now (a customer made by their first order has it); a
    rule whose `if: {orders}` they already fail plans nothing (a welcome for people who
    have not bought, to someone who just did)."""
    planned = []
    for rule in rules.for_event(CREATED):
        if rule.when.customer is not None and not rule.when.customer.matches(customer):
            continue
        if rule.if_ is not None and not rule.if_.orders_hold(orders):
            continue
        message = planned_message(
            rule,
            send_at=send_time(rule, anchor=at, items=(), tz=tz),
            dedupe_key=created_key(rule.id, customer_id=customer_id),
            customer_key=customer.key or str(customer_id),
            event_at=at,
        )
        planned += [message, *held_out_steps(rule, message, tz=tz)]
    return planned


@dataclass(frozen=True)
class Lapse:
    """When a regular customer lapses: their last order and their usual interval after it."""

    last_order_id: int
    last_order_at: datetime
    interval: timedelta

    @property
    def at(self) -> datetime:
        return self.last_order_at + self.interval


def usual_interval(placed: Sequence[datetime]) -> timedelta | None:
    """The median gap between consecutive visits (orders in time order, at most the latest
    LAPSE_ORDERS); None with fewer than LAPSE_MIN_ORDERS visits."""
    visits: list[datetime] = []
    for at in sorted(placed)[-LAPSE_ORDERS:]:
        if not visits or at - visits[-1] >= MIN_GAP:
            visits.append(at)
    if len(visits) < LAPSE_MIN_ORDERS:
        return None
    gaps = sorted(later - earlier for earlier, later in pairwise(visits))
    middle = len(gaps) // 2
    if len(gaps) % 2:
        return gaps[middle]
    return (gaps[middle - 1] + gaps[middle]) / 2


def lapse(orders: Sequence[tuple[int, datetime]]) -> Lapse | None:
    """The lapse of a customer with these standing orders ((id, placed at)), or None when
    they are no regular (yet)."""
    if len(orders) < LAPSE_MIN_ORDERS:
        return None
    latest = sorted(orders, key=lambda order: (order[1], order[0]))[-LAPSE_ORDERS:]
    interval = usual_interval([at for _, at in latest])
    if interval is None:
        return None
    last_id, last_at = latest[-1]
    return Lapse(last_order_id=last_id, last_order_at=last_at, interval=interval)


def plan_lapses(
    *,
    rules: RuleSet,
    customer_id: int,
    orders: Sequence[tuple[int, datetime]],
    tz: ZoneInfo,
    now: datetime,
    horizon: timedelta,
    customer: CustomerFacts,
) -> list[PlannedMessage]:
    """The `customer.lapsed` messages whose send time falls in [now − grace, now + horizon]:
    the job plans a lapse this long ahead (so a new order before it can still cancel it), and
    a run that came late still plans what fell due within LATE_GRACE; older lapses are not
    mailed (a rule added today does not write to everyone who ever went quiet)."""
    found = lapse(orders)
    if found is None:
        return []
    planned = []
    for rule in rules.for_event(LAPSED):
        if rule.when.customer is not None and not rule.when.customer.matches(customer):
            continue
        send_at = send_time(rule, anchor=found.at, items=(), tz=tz)
        if not now - LATE_GRACE <= send_at <= now + horizon:
            continue
        message = planned_message(
            rule,
            send_at=send_at,
            dedupe_key=lapse_key(
                rule.id, customer_id=customer_id, last_order_id=found.last_order_id
            ),
            customer_key=customer.key or str(customer_id),
            event_at=found.at,
        )
        planned += [message, *held_out_steps(rule, message, tz=tz)]
    return planned
