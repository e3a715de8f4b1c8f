"""Frequency caps: the next free slot, deferral inside expiry, or a skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.planner.limits import Capped, Defer, Skip, cap_decision, free_slot
from app.rules.model import Limit
from app.rules.windows import parse_send_window

NOW = datetime(2026, 11, 20, 10, tzinfo=UTC)
TWO_A_WEEK = Limit(max=2, per="7d")
UTC_ZONE = ZoneInfo("UTC")


def days_ago(*days: float) -> list[datetime]:
    return [NOW - timedelta(days=day) for day in days]


def test_room_left_means_now() -> None:
    assert free_slot(NOW, [Capped(TWO_A_WEEK, days_ago(1))]) == NOW
    assert free_slot(NOW, [Capped(TWO_A_WEEK, days_ago(7, 8))]) == NOW  # both left the span


def test_a_full_span_frees_when_its_oldest_message_leaves() -> None:
    assert free_slot(NOW, [Capped(TWO_A_WEEK, days_ago(1, 3))]) == NOW + timedelta(days=4)
    assert free_slot(NOW, [Capped(TWO_A_WEEK, days_ago(1, 3, 5))]) == NOW + timedelta(days=4)


def test_every_cap_must_have_room() -> None:
    once_a_month = Capped(Limit(max=1, per="30d"), days_ago(20))
    twice_a_week = Capped(TWO_A_WEEK, days_ago(1))
    assert free_slot(NOW, [twice_a_week, once_a_month]) == NOW + timedelta(days=10)


def test_calendar_month_spans() -> None:
    monthly = Capped(Limit(max=1, per="1mo"), [datetime(2026, 10, 31, 10, tzinfo=UTC)])
    assert free_slot(NOW, [monthly]) == datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_deferred_inside_expiry_and_into_the_send_window() -> None:
    window = parse_send_window("mon-fri", "09:00-17:00")
    caps = [Capped(TWO_A_WEEK, days_ago(1, 6.9))]  # frees at Fri 12:24 UTC
    decision = cap_decision(
        now=NOW, caps=caps, expires_at=NOW + timedelta(days=5), window=window, tz=UTC_ZONE
    )
    assert decision == Defer(datetime(2026, 11, 20, 12, 24, tzinfo=UTC))
    late = [Capped(TWO_A_WEEK, days_ago(1, 2))]  # frees Wed 25th 10:00
    decision = cap_decision(
        now=NOW, caps=late, expires_at=NOW + timedelta(days=10), window=window, tz=UTC_ZONE
    )
    assert decision == Defer(datetime(2026, 11, 25, 10, tzinfo=UTC))


def test_skipped_when_no_slot_comes_before_expiry() -> None:
    caps = [Capped(TWO_A_WEEK, days_ago(1, 2))]
    assert cap_decision(
        now=NOW, caps=caps, expires_at=NOW + timedelta(days=3), window=None, tz=UTC_ZONE
    ) == Skip("frequency_cap")
    assert cap_decision(now=NOW, caps=caps, expires_at=None, window=None, tz=UTC_ZONE) == Defer(
        NOW + timedelta(days=5)
    )


def test_send_now_when_free() -> None:
    assert cap_decision(now=NOW, caps=[], expires_at=None, window=None, tz=UTC_ZONE) is None
