"""How figures are written, and the charts' axis ticks: pure."""

from __future__ import annotations

from datetime import date

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
