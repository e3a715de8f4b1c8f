"""The pure parts of stats: what a message counts, when ids settle, buckets, rates, CSV."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.models import StatsTotals
from app.stats.export import columns_of, csv_text
from app.stats.repository import Mark
from app.stats.rollup import next_candidate, settled_up_to
from app.stats.schemas import TemplateRow
from app.stats.service import Span, buckets, figures
from app.stats.tally import COUNTERS, MessageFacts, MessageTally, contribution, event_total

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_the_counters_are_the_rollup_columns() -> None:
    columns = [c.name for c in StatsTotals.__table__.columns if c.name not in ("series_id", "day")]
    assert columns == list(COUNTERS)


def test_a_sent_message_with_opens_clicks_and_an_order() -> None:
    tally = MessageTally(1, series_id=3, day=date(2026, 11, 20), status="sent")
    tally.opens, tally.opens_machine, tally.clicks, tally.conversions = 3, 1, 2, 2
    assert contribution(tally) == Counter(
        planned=1,
        sent=1,
        opened=1,
        opens=3,
        opened_machine=1,
        opens_machine=1,
        clicked=1,
        clicks=2,
        converted=1,
        conversions=2,
    )


def test_held_out_orders_are_the_control_groups() -> None:
    tally = MessageTally(1, series_id=3, day=date(2026, 11, 20), status="held_out")
    tally.conversions = 1
    assert contribution(tally) == Counter(
        planned=1, held_out=1, held_out_converted=1, held_out_conversions=1
    )


def test_sending_is_still_waiting_and_a_hard_bounce_is_a_failure() -> None:
    waiting = MessageTally(1, series_id=3, day=date(2026, 11, 20), status="sending")
    assert contribution(waiting) == Counter(planned=1, scheduled=1)
    bounced = MessageTally(1, series_id=3, day=date(2026, 11, 20), status="failed", bounced=True)
    assert contribution(bounced) == Counter(planned=1, failed=1, bounced=1)


def test_a_message_counts_on_the_day_it_was_sent_else_when_due() -> None:
    due = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    sent = datetime(2026, 11, 21, 0, 5, tzinfo=UTC)
    facts = MessageFacts(1, "r", None, "t", "sent", None, due, sent)
    assert facts.day == date(2026, 11, 21)
    failed = MessageFacts(1, "r", "b", "t", "failed", "hard_bounce", due, None)
    assert (failed.day, failed.bounced, failed.series.variant) == (date(2026, 11, 20), True, "b")


@pytest.mark.parametrize(
    ("kind", "event_class", "total"),
    [
        ("open", "human", "opens"),
        ("open", "machine", "opens_machine"),
        ("open", "unknown", "opens_unknown"),
        ("click", "human", "clicks"),
        ("click", "machine", "clicks_machine"),
        ("click", "unknown", "clicks_unknown"),
    ],
)
def test_event_totals(kind: str, event_class: str, total: str) -> None:
    assert event_total(kind, event_class) == total


def test_ids_fold_once_they_were_the_newest_a_while_ago() -> None:
    mark = Mark(folded_id=10)
    # No candidate yet: nothing new is safe; the newest id starts its wait now.
    assert settled_up_to(mark, now=NOW, settle=MINUTE, latest_id=50) == 10
    mark = next_candidate(mark, now=NOW, settle=MINUTE, latest_id=50)
    assert (mark.candidate_id, mark.candidate_at) == (50, NOW)
    later = NOW + timedelta(seconds=59)
    assert settled_up_to(mark, now=later, settle=MINUTE, latest_id=70) == 10
    assert next_candidate(mark, now=later, settle=MINUTE, latest_id=70) == mark
    settled = NOW + MINUTE
    assert settled_up_to(mark, now=settled, settle=MINUTE, latest_id=70) == 50
    mark = next_candidate(
        Mark(folded_id=50, candidate_id=50, candidate_at=NOW),
        now=settled,
        settle=MINUTE,
        latest_id=70,
    )
    assert (mark.candidate_id, mark.candidate_at) == (70, settled)
    # No wait at all: everything committed is safe.
    assert settled_up_to(Mark(), now=NOW, settle=timedelta(0), latest_id=70) == 70


def test_weeks_are_iso_weeks_clipped_to_the_span() -> None:
    span = Span(date(2026, 11, 19), date(2026, 12, 1))  # Thursday to Tuesday
    assert [(part.first.isoformat(), part.last.isoformat()) for part in buckets(span, "week")] == [
        ("2026-11-19", "2026-11-22"),
        ("2026-11-23", "2026-11-29"),
        ("2026-11-30", "2026-12-01"),
    ]
    assert len(buckets(span, "day")) == 13
    assert Span.ending(date(2026, 11, 30), days=30) == Span(date(2026, 11, 1), date(2026, 11, 30))


def test_rates_and_lift() -> None:
    counts = {"sent": 200, "opened": 50, "clicked": 20, "converted": 10, "unsubscribed": 1}
    counts |= {"held_out": 40, "held_out_converted": 1}
    shown = figures(counts, {"EUR": Decimal("10.5"), "USD": Decimal("0.125"), "GBP": Decimal(0)})
    assert (shown["open_rate"], shown["click_rate"], shown["conversion_rate"]) == (
        0.25,
        0.1,
        0.05,
    )
    assert (shown["unsubscribe_rate"], shown["holdout_conversion_rate"]) == (0.005, 0.025)
    assert shown["lift"] == 1.0  # 0.05 / 0.025 - 1
    assert shown["revenue"] == {"EUR": "10.50", "USD": "0.125"}
    assert shown["nps"] is None and shown["planned"] == 0


@pytest.mark.parametrize(
    "counts",
    [
        {"sent": 0, "held_out": 10, "held_out_converted": 1},  # no rate to compare
        {"sent": 10, "converted": 1, "held_out": 0},  # no holdout group
        {"sent": 10, "converted": 1, "held_out": 10, "held_out_converted": 0},  # nothing to scale
    ],
)
def test_lift_is_null_when_undefined(counts: dict[str, int]) -> None:
    assert figures(counts, {})["lift"] is None


def test_csv_without_rows_still_has_its_header() -> None:
    text = csv_text([], fields=columns_of(TemplateRow))
    assert text.startswith("template,planned,scheduled,")
    assert "revenue" not in text and text.count("\r\n") == 1


def test_csv_has_a_revenue_column_per_currency() -> None:
    rows = [
        TemplateRow.model_validate({"template": "a", **figures({}, {"EUR": Decimal(1)})}),
        TemplateRow.model_validate({"template": "b", **figures({}, {"USD": Decimal(2)})}),
    ]
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows, fields=columns_of(TemplateRow)))))
    assert [(row["revenue_EUR"], row["revenue_USD"], row["nps"]) for row in parsed] == [
        ("1.00", "", ""),
        ("", "2.00", ""),
    ]
