"""How the dashboard writes the stats API's figures: the same numbers, made readable.

Pure; the page's tests compare its cells with these applied to the API's answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

from app.stats.schemas import Bucket

NONE = "—"  # a figure that is undefined (a rate of nothing, no NPS yet)


def count(value: int) -> str:
    """1234 -> "1,234"."""
    return f"{value:,}"


def rate(value: float | None) -> str:
    """0.125 -> "12.5 %"; None (nothing to divide by) -> "—"."""
    return NONE if value is None else f"{value * 100:.1f} %"


def money(revenue: Mapping[str, str]) -> list[str]:
    """{"EUR": "1348.60"} -> ["EUR 1,348.60"], one line per currency; [] when none."""
    lines = []
    for currency, amount in sorted(revenue.items()):
        number = Decimal(amount)
        places = max(2, -int(number.as_tuple().exponent))
        lines.append(f"{currency} {number:,.{places}f}")
    return lines


def score(value: float | None) -> str:
    """The net promoter score (-100 to 100), to one decimal; "—" when no one answered."""
    return NONE if value is None else f"{value:.1f}"


def bucket_label(start: date, bucket: Bucket) -> str:
    """A chart's x label: "Nov 3" for a day, "wk Nov 3" for the week starting then."""
    day = f"{start:%b} {start.day}"
    return day if bucket == "day" else f"wk {day}"


def mean(value: float | None) -> str:
    """A mean answer (CES, 1-7) to two decimals; "—" when no one answered."""
    return NONE if value is None else f"{value:.2f}"


def age(seconds: float | None) -> str:
    """How long something has waited, in its largest unit: "45 s", "12 min", "3 h 5 min",
    "2 d 4 h"; "—" for nothing waiting."""
    if seconds is None:
        return NONE
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def when(moment: datetime | None) -> str:
    """A UTC moment as the console writes it: "2026-11-20 09:30 UTC"; "—" for none."""
    return NONE if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def stamp(text: str | None) -> str:
    """An ISO 8601 time from a JSON document, as `when` writes it; "—" for none."""
    return NONE if not text else when(datetime.fromisoformat(text).astimezone(UTC))


def price(amount: Decimal | str | None, currency: str | None = None) -> str:
    """A stored price (kept to 4 places) as people write it: "EUR 13.90", "JPY 1,200.00";
    "—" for none."""
    if amount is None:
        return NONE
    number = Decimal(amount).normalize()
    places = max(2, -int(number.as_tuple().exponent))
    return f"{currency + ' ' if currency else ''}{number:,.{places}f}"
