"""Send windows: the local days and hours in which a customer may receive email.

A window such as `mon-fri 09:00-20:00` is read in the customer's time zone. Each allowed day
opens one *occurrence* of the window, from `start` on that day to `end` on the same day, or on
the next day when `end <= start`; so Friday 22:00-02:00 is Friday's window, not Saturday's.

Wall-clock times become instants through `at_local_time`: the first instant at which the local
clock reads that time or later. That one rule settles both DST changes. A time skipped by the
spring-forward gap becomes the first instant after the gap; a time that happens twice at fall-back
becomes its first occurrence, so an occurrence opens and closes once and a send happens once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALL_DAYS = frozenset(range(7))
_MIDNIGHT = time(0)
_ONE_DAY = timedelta(days=1)
_DAY_HINT = "use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri"
_HOURS_HINT = (
    "use HH:MM-HH:MM in 24-hour local time, for example 09:00-20:00 or 22:00-06:00 "
    "(24:00 only as an end)"
)
_HOURS = re.compile(r"([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})")

# A window occurrence opens on the day before `earliest` at the soonest (it may cross midnight)
# and every weekday comes round within 7 days; one extra day covers zones whose clocks fall back
# across midnight, where a local date can repeat.
_SEARCH_FIRST_DAY = -1
_SEARCH_LAST_DAY = 8


@dataclass(frozen=True)
class SendWindow:
    """Allowed local days and hours. `end <= start` means the window crosses midnight.

    `start == end` is a 24-hour window starting at `start`; `00:00-00:00` is the whole day and
    is what `parse_send_window` builds for `00:00-24:00` or no hours at all.
    """

    days: frozenset[int]  # weekday numbers, Monday=0 .. Sunday=6
    start: time  # local wall-clock start, inclusive
    end: time  # local wall-clock end, exclusive

    def __post_init__(self) -> None:
        # Checked here rather than only in the parser so that `next_send_time` can rely on
        # finding an allowed day within a week.
        if not self.days:
            raise ValueError("a send window needs at least one day")
        if not self.days <= _ALL_DAYS:
            raise ValueError(f"send window days must be 0 (Monday) .. 6 (Sunday), got {self.days}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("send window times are local wall-clock times, without a time zone")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


def parse_send_window(days: str | list[str] | None, hours: str | None) -> SendWindow:
    """Build a window from rule text: days like `mon-fri` or `sat,sun`, hours like `09:00-20:00`.

    `None` (or `daily`) means every day; `None` hours mean the whole day, 00:00-24:00.
    """
    start, end = _parse_hours(hours)
    return SendWindow(days=_parse_days(days), start=start, end=end)


def next_send_time(earliest: datetime, *, window: SendWindow | None, tz: ZoneInfo) -> datetime:
    """The first instant at or after `earliest` inside `window` in `tz`'s local time, in UTC."""
    not_before = _as_utc(earliest)
    if window is None:
        return not_before
    local_day = not_before.astimezone(tz).date()
    for offset in range(_SEARCH_FIRST_DAY, _SEARCH_LAST_DAY + 1):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        found = _first_instant_in(_occurrence(window, day, tz), not_before)
        if found is not None:
            return found
    # Unreachable for a valid SendWindow: some allowed day's occurrence opens within a week.
    raise RuntimeError(f"no send window occurrence found after {earliest.isoformat()}")


# Pure, and asked for the same few days, times and zones over and over (each send window
# check opens and closes occurrences): remembered rather than recomputed.
@lru_cache(maxsize=65_536)
def at_local_time(day: date, at: time, *, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the clock in `tz` first reads `at` (or later) on `day`.

    Ambiguous times (fall-back) give the first occurrence; times inside the spring-forward gap
    give the first instant after the gap, e.g. 02:30 on a New York gap night gives 03:00 local.
    """
    if at.tzinfo is not None:
        raise ValueError("at_local_time needs a wall-clock time without a time zone")
    wall = datetime.combine(day, at.replace(fold=0))
    # fold=0 picks the earlier of two readings at fall-back, which is the one we want.
    first_guess = wall.replace(tzinfo=tz).astimezone(UTC)
    if _wall_clock(first_guess, tz) == wall:
        return first_guess
    return _end_of_gap(wall, tz)


def _end_of_gap(wall: datetime, tz: ZoneInfo) -> datetime:
    """The transition instant that skips over the non-existent local time `wall`."""
    # Read with the offset after the change (fold=1) the gap time lands before the transition,
    # read with the offset before it (fold=0) it lands after; zoneinfo does not expose the
    # transition itself, so bisect between the two down to the microsecond.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    resolution = timedelta(microseconds=1)
    while after - before > resolution:
        middle = before + (after - before) // 2
        if _wall_clock(middle, tz) < wall:
            before = middle
        else:
            after = middle
    return after


def _occurrence(window: SendWindow, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants at which the window opened on `day` opens and closes."""
    close_day = day + _ONE_DAY if window.crosses_midnight else day
    return at_local_time(day, window.start, tz=tz), at_local_time(close_day, window.end, tz=tz)


def _first_instant_in(
    occurrence: tuple[datetime, datetime], not_before: datetime
) -> datetime | None:
    opens, closes = occurrence
    if opens == closes:
        # The spring-forward gap swallowed the whole window (e.g. 02:00-02:30): keep it open for
        # the single instant after the gap so that day's send is moved, not lost.
        return opens if opens >= not_before else None
    if closes <= not_before:
        return None
    return max(opens, not_before)


def _as_utc(moment: datetime) -> datetime:
    # Aware datetimes sharing a tzinfo compare by wall clock, which is wrong across DST;
    # everything is compared in UTC.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _wall_clock(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _parse_days(days: str | list[str] | None) -> frozenset[int]:
    if days is None:
        return _ALL_DAYS
    tokens: list[object] = list(days.split(",")) if isinstance(days, str) else list(days)
    if not tokens:
        raise ValueError(f"bad days {days!r}: name at least one day; {_DAY_HINT}")
    allowed: set[int] = set()
    for token in tokens:
        allowed |= _parse_day_token(token)
    return frozenset(allowed)


def _parse_day_token(token: object) -> frozenset[int]:
    # Typed as object because rule files are YAML, where `[mon, 1]` is easy to write.
    if not isinstance(token, str):
        raise ValueError(f"bad day {token!r}: {_DAY_HINT}")
    if token.strip().lower() == "daily":
        return _ALL_DAYS
    first, dash, last = token.partition("-")
    if not dash:
        return frozenset({_day_number(first)})
    start, stop = _day_number(first), _day_number(last)
    # Ranges may wrap past Sunday (fri-mon) because long weekends are written that way.
    return frozenset((start + step) % 7 for step in range((stop - start) % 7 + 1))


def _day_number(name: str) -> int:
    cleaned = name.strip()
    try:
        return _DAY_NAMES.index(cleaned.lower())
    except ValueError:
        raise ValueError(f"bad day {cleaned!r}: {_DAY_HINT}") from None


def _parse_hours(hours: str | None) -> tuple[time, time]:
    if hours is None:
        return _MIDNIGHT, _MIDNIGHT
    match = _HOURS.fullmatch(hours.strip())
    if match is None:
        raise ValueError(f"bad hours {hours!r}: {_HOURS_HINT}")
    start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
    if start_hour > 23 or start_minute > 59 or end_minute > 59 or end_hour > 24:
        raise ValueError(f"bad hours {hours!r}: {_HOURS_HINT}")
    if end_hour == 24 and end_minute != 0:
        raise ValueError(f"bad hours {hours!r}: {_HOURS_HINT}")
    if (start_hour, start_minute) == (end_hour, end_minute):
        # 09:00-09:00 could mean "never" or "always"; refuse rather than guess.
        raise ValueError(
            f"bad hours {hours!r}: start and end are equal; leave hours out for the whole day"
        )
    # 24:00 is stored as 00:00: end <= start then means the window runs to the next midnight.
    return time(start_hour, start_minute), time(end_hour % 24, end_minute)
