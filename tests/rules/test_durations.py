from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.rules.durations import Duration, add_months, parse_duration, parse_range


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0m", Duration()),
        ("90m", Duration(seconds=5400)),
        ("36h", Duration(seconds=129_600)),
        ("2w", Duration(seconds=1_209_600)),
        ("3mo", Duration(months=3)),
        ("1y6mo", Duration(months=18)),
        ("-3d", Duration(seconds=-259_200)),
    ],
)
def test_parse(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "2 weeks", "1.5d", "3M", "d5", "1w-2d", "\u0663d"])
def test_bad_durations_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ValueError, match="mo \\(months\\)"):
        parse_duration(text)


def test_months_clamp_to_month_end() -> None:
    jan31 = datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert add_months(jan31, 1) == datetime(2027, 2, 28, 10, tzinfo=UTC)
    assert add_months(datetime(2028, 1, 31, tzinfo=UTC), 1).day == 29
    assert parse_duration("1y").add_to(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(
        2029, 2, 28, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "text", ["1w..2w", "2w..2w", "4w..1mo", "1mo..31d", "1y..366d", "1mo..1mo1d"]
)
def test_ranges_that_hold_from_every_date(text: str) -> None:
    low, high = parse_range(text).low, parse_range(text).high
    for month in range(1, 13):
        start = datetime(2028, month, 1, tzinfo=UTC)
        assert low.add_to(start) <= high.add_to(start)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2w..1w", "the first duration must not exceed the second"),
        ("3mo..2mo", "the first duration must not exceed the second"),
        # Months vary: these hold from some dates and turn round from others.
        ("30d..1mo", "exceeds the second when counted from 31 January"),
        ("1mo..4w", "exceeds the second when counted from 1 January"),
        ("1y..365d", "exceeds the second when counted from 1 March"),
    ],
)
def test_reversed_ranges_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_range(text)
