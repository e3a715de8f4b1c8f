"""Which message an order is credited to: the last human touch within the window, else the
holdout group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.stats.attribution import AttributionPolicy, Credit, HeldOutMessage, Touch, Via, credit

ORDER = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CLICKS = AttributionPolicy.of(window_days=5, via="click")
CLICKS_OR_OPENS = AttributionPolicy.of(window_days=5, via="click_or_open")


def ago(**delta: float) -> datetime:
    return ORDER - timedelta(**delta)


def click(message_id: int, at: datetime) -> Touch:
    return Touch(message_id=message_id, via=Via.CLICK, at=at)


def open_(message_id: int, at: datetime) -> Touch:
    return Touch(message_id=message_id, via=Via.OPEN, at=at)


def test_the_latest_click_in_the_window_wins() -> None:
    touches = [click(1, ago(days=4)), click(2, ago(days=1)), click(3, ago(days=2))]
    assert credit(placed_at=ORDER, touches=touches, held_out=[], policy=CLICKS) == Credit(
        2, Via.CLICK
    )


@pytest.mark.parametrize(
    ("at", "credited"),
    [
        (ago(days=5), True),  # the window's edge is in it
        (ago(days=5, seconds=1), False),
        (ago(seconds=0), True),
        (ORDER + timedelta(seconds=1), False),  # after the order
    ],
)
def test_the_window(at: datetime, credited: bool) -> None:
    found = credit(placed_at=ORDER, touches=[click(1, at)], held_out=[], policy=CLICKS)
    assert (found is not None) == credited


def test_opens_count_only_when_configured() -> None:
    touches = [click(1, ago(days=3)), open_(2, ago(days=1))]
    assert credit(placed_at=ORDER, touches=touches, held_out=[], policy=CLICKS) == Credit(
        1, Via.CLICK
    )
    assert credit(placed_at=ORDER, touches=touches, held_out=[], policy=CLICKS_OR_OPENS) == (
        Credit(2, Via.OPEN)
    )
    only_open = [open_(2, ago(days=1))]
    assert credit(placed_at=ORDER, touches=only_open, held_out=[], policy=CLICKS) is None


def test_a_click_beats_an_open_at_the_same_moment() -> None:
    at = ago(hours=3)
    touches = [open_(1, at), click(2, at)]
    found = credit(placed_at=ORDER, touches=touches, held_out=[], policy=CLICKS_OR_OPENS)
    assert found == Credit(2, Via.CLICK)


def test_a_held_out_customer_converts_for_the_control_group() -> None:
    held = [HeldOutMessage(7, ago(days=6)), HeldOutMessage(8, ago(days=2))]
    assert credit(placed_at=ORDER, touches=[], held_out=held, policy=CLICKS) == Credit(
        8, Via.HOLDOUT
    )
    too_old = [HeldOutMessage(7, ago(days=6))]
    assert credit(placed_at=ORDER, touches=[], held_out=too_old, policy=CLICKS) is None
    not_yet = [HeldOutMessage(9, ORDER + timedelta(minutes=1))]
    assert credit(placed_at=ORDER, touches=[], held_out=not_yet, policy=CLICKS) is None


def test_a_click_comes_before_the_holdout_group() -> None:
    # Held out of one rule, mailed and clicking by another: one order, one credit.
    found = credit(
        placed_at=ORDER,
        touches=[click(1, ago(days=3))],
        held_out=[HeldOutMessage(8, ago(days=1))],
        policy=CLICKS,
    )
    assert found == Credit(1, Via.CLICK)


def test_nothing_to_credit() -> None:
    assert credit(placed_at=ORDER, touches=[], held_out=[], policy=CLICKS_OR_OPENS) is None
