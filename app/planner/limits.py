"""Frequency caps: at most `max` messages per customer in any `per` span. Pure.

A message that would break a cap waits for the next free slot: the moment the oldest
message in the span leaves it. Messages of higher priority that are due at the same time
hold their slots first (ties go to the older message), so two workers deciding at once
reach the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from app.rules.durations import Duration
from app.rules.model import Limit
from app.rules.windows import SendWindow, next_send_time


@dataclass(frozen=True)
class Capped:
    """A cap and the send times that count against it."""

    limit: Limit
    taken: Sequence[datetime]


def free_slot(at: datetime, caps: Sequence[Capped]) -> datetime:
    """The earliest instant at or after `at` when every cap has room."""
    while True:
        later = max((_free_for(at, cap) for cap in caps), default=at)
        if later == at:
            return at
        at = later


def _free_for(at: datetime, cap: Capped) -> datetime:
    span = cap.limit.span
    inside = sorted(taken for taken in cap.taken if taken <= at < span.add_to(taken))
    if len(inside) < cap.limit.max:
        return at
    return span.add_to(inside[len(inside) - cap.limit.max])


@dataclass(frozen=True)
class Defer:
    until: datetime


@dataclass(frozen=True)
class Skip:
    reason: str = "frequency_cap"


def cap_decision(
    *,
    now: datetime,
    caps: Sequence[Capped],
    expires_at: datetime | None,
    window: SendWindow | None,
    tz: ZoneInfo,
) -> Defer | Skip | None:
    """None to send now; else when to try again, or skip when no slot comes before expiry."""
    at = free_slot(now, caps)
    if at == now:
        return None
    while True:  # the slot must also fall inside the send window
        moved = free_slot(next_send_time(at, window=window, tz=tz), caps)
        if moved == at:
            break
        at = moved
    if expires_at is not None and at > expires_at:
        return Skip()
    return Defer(at)


def span_start(now: datetime, limits: Sequence[Limit]) -> datetime:
    """How far back a cap can look: the start of the longest span."""
    return min(
        (
            Duration(months=-limit.span.months, seconds=-limit.span.seconds).add_to(now)
            for limit in limits
        ),
        default=now,
    )
