"""How figures are written, and the charts' axis ticks: pure."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.dashboard import figures
from app.dashboard.charts import integer_ticks


def test_figures_are_written_for_people() -> None:
    assert figures.count(0) == "0"
    assert figures.count(1234567) == "1,234,567"
    assert figures.rate(None) == "—"
    assert figures.rate(0.5) == "50.0 %"
    assert figures.rate(0.1667) == "16.7 %"
    assert figures.money({}) == []
    assert figures.money({"USD": "0.125", "EUR": "1348.6"}) == ["EUR 1,348.60", "USD 0.125"]
    assert figures.score(None) == "—"
    assert figures.score(42.26) == "42.3"
    assert figures.score(-100.0) == "-100.0"
    assert figures.bucket_label(date(2026, 11, 3), "day") == "Nov 3"
    assert figures.bucket_label(date(2026, 11, 2), "week") == "wk Nov 2"


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (12, [0, 5, 10, 15]),
        (49.8, [0, 10, 20, 30, 40, 50]),
        (1234, [0, 500, 1000, 1500]),
    ],
)
def test_axis_ticks_are_round_and_reach_the_top(top: float, ticks: list[int]) -> None:
    assert integer_ticks(top) == ticks


def test_console_figures_ages_times_and_prices() -> None:
    assert [figures.age(s) for s in (None, 0, 59.9, 60, 5400, 7200, 93600, 172800)] == [
        "—",
        "0 s",
        "59 s",
        "1 min",
        "1 h 30 min",
        "2 h",
        "1 d 2 h",
        "2 d",
    ]
    moment = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    assert figures.when(moment) == "2026-11-20 09:05 UTC" and figures.when(None) == "—"
    assert figures.stamp("2026-11-20T12:05:00+03:00") == "2026-11-20 09:05 UTC"
    assert figures.stamp(None) == "—"
    assert figures.price(Decimal("13.9000"), "EUR") == "EUR 13.90"
    assert figures.price("1200", "JPY") == "JPY 1,200.00"
    assert figures.price("0.1250") == "0.125"
    assert figures.price(None, "EUR") == "—"
