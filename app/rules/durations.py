"""Durations as marketers write them: `0m`, `90m`, `36h`, `5d`, `2w`, `3mo`, `1y`, `1y6mo`.

`m` is minutes and `mo` is months, so "2m" never silently means two months.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

# ASCII digits only: `٣d` would parse with `\d`, and no editor's schema pattern agrees on it.
_PART = re.compile(r"([0-9]+)(mo|y|w|d|h|m)")
_WHOLE = re.compile(r"^[+-]?(?:[0-9]+(?:mo|y|w|d|h|m))+$")

# What `parse_duration` accepts, as a JSON Schema pattern for editors: the text is stripped
# and its spaces are dropped before matching, so a space may follow any character of it.
_SPACES = " *"
_UNITS = f"(?:m{_SPACES}o|y|w|d|h|m)"
_DURATION_BODY = f"[+-]?{_SPACES}(?:[0-9](?:{_SPACES}[0-9])*{_SPACES}{_UNITS}{_SPACES})+"
DURATION_PATTERN = rf"^\s*{_DURATION_BODY}\s*$"
# What `parse_range` accepts: one duration, or two joined by `..` (each stripped on its own).
RANGE_PATTERN = rf"^\s*{_DURATION_BODY}\s*(?:\.\.\s*{_DURATION_BODY}\s*)?$"


@dataclass(frozen=True)
class Duration:
    """A calendar-aware span: months and years move the calendar, the rest is exact time."""

    months: int = 0
    seconds: int = 0

    def add_to(self, moment: datetime) -> datetime:
        if self.months:
            moment = add_months(moment, self.months)
        return moment + timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        return f"{self.months}mo{self.seconds}s"


# Rules hold durations as text; the planner asks for the same few thousands of times.
@lru_cache(maxsize=4096)
def parse_duration(text: str) -> Duration:
    cleaned = text.strip().replace(" ", "")
    if not _WHOLE.match(cleaned):
        raise ValueError(
            f"bad duration {text!r}: use a number and a unit, m (minutes), h, d, w, "
            "mo (months) or y, for example 90m, 5d, 2w, 3mo, 1y6mo"
        )
    sign = -1 if cleaned.startswith("-") else 1
    months = seconds = 0
    for amount_text, unit in _PART.findall(cleaned):
        amount = int(amount_text)
        if unit == "y":
            months += 12 * amount
        elif unit == "mo":
            months += amount
        else:
            seconds += amount * {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60}[unit]
    return Duration(months=sign * months, seconds=sign * seconds)


def parse_fixed_span(text: str) -> timedelta:
    """A span of fixed length: seconds (`3600`) or a duration in m, h, d or w (`7d`), as
    RULE_GRACE takes it. A month is no fixed span, so `mo` and `y` are refused."""
    if text.strip().isdigit():
        return timedelta(seconds=int(text))
    duration = parse_duration(text)
    if duration.months:
        raise ValueError(f"{text!r}: give the grace in m, h, d or w, not mo or y")
    return timedelta(seconds=duration.seconds)


def add_months(moment: datetime, months: int) -> datetime:
    """Add calendar months, clamping to the month's last day (31 Jan + 1mo = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    days_in_month = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return moment.replace(year=year, month=month, day=min(moment.day, days_in_month[month - 1]))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@dataclass(frozen=True)
class DurationRange:
    """`1w..2w`: the earliest and latest delay. A single duration is a range of one point."""

    low: Duration
    high: Duration

    def at(self, anchor: datetime, position: float) -> datetime:
        """The instant `position` (0 = low, 1 = high) of the way through the range."""
        start, end = self.low.add_to(anchor), self.high.add_to(anchor)
        return start + (end - start) * min(max(position, 0.0), 1.0)


@lru_cache(maxsize=4096)
def parse_range(text: str) -> DurationRange:
    low_text, separator, high_text = text.partition("..")
    low = parse_duration(low_text)
    if not separator:
        return DurationRange(low=low, high=low)
    high = parse_duration(high_text)
    if high.months >= low.months and high.seconds >= low.seconds:
        return DurationRange(low=low, high=high)
    reversed_from = [day for day in _REFERENCE_DAYS if high.add_to(day) < low.add_to(day)]
    if len(reversed_from) == len(_REFERENCE_DAYS):
        raise ValueError(f"bad range {text!r}: the first duration must not exceed the second")
    if reversed_from:
        # `30d..1mo` holds in January but not from 1 February: months vary in length, and a
        # range must not turn round for some customers.
        raise ValueError(
            f"bad range {text!r}: the first duration exceeds the second when counted from "
            f"{reversed_from[0].day} {reversed_from[0]:%B}; write both in months or both in days"
        )
    return DurationRange(low=low, high=high)


def _reference_days() -> tuple[datetime, ...]:
    # The first and last days of every month over four years (one leap year) meet every
    # month length a span of months can cover.
    days = []
    for year in range(2001, 2005):
        for month in range(1, 13):
            first = datetime(year, month, 1)
            days += [first, add_months(first, 1) - timedelta(days=1)]
    return tuple(days)


_REFERENCE_DAYS = _reference_days()
