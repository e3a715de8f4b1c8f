from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.rules.durations import Duration, add_months, parse_duration


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


@pytest.mark.parametrize("text", ["", "5", "2 weeks", "1.5d", "3M", "d5", "1w-2d"])
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
