"""Properties of planned send times over random rules, zones and order times (hypothesis).

Every send time is: never before the order, inside the rule's send window in the customer's
zone, and when the rule names a time of day, that time on a local calendar day (or the first
instant after it, on the night a DST change skips it).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.planner.planner import plan_order_event
from app.rules.facts import ItemFacts, OrderFacts
from app.rules.loader import RuleSet
from app.rules.model import Rule
from app.rules.windows import at_local_time, next_send_time
from tests.rules.test_windows import TRANSITIONS

ZONES = [*TRANSITIONS, "UTC", "Europe/Moscow", "Asia/Tokyo", "Australia/Sydney"]
DELAYS = ["0m", "90m", "1d", "3d", "1w..2w", "1mo", "2mo..3mo"]
TIMES = [None, "10:00", "02:30", "01:30", "23:45"]
WINDOWS = [None, ("mon-sat", "09:00-20:00"), ("mon-sun", "22:00-06:00"), ("sun", "01:00-03:00")]


@st.composite
def placed_at(draw: st.DrawFn, zone: str) -> datetime:
    """Often close to one of the zone's DST changes."""
    if zone in TRANSITIONS and draw(st.booleans()):
        change = draw(st.sampled_from(TRANSITIONS[zone]))
        minutes = draw(st.integers(-3 * 24 * 60, 24 * 60))
        return change + timedelta(minutes=minutes)
    return draw(st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC)))


Case = tuple[str, datetime, str, str | None, tuple[str, str] | None, int]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(ZONES))
    return (
        zone,
        draw(placed_at(zone)),
        draw(st.sampled_from(DELAYS)),
        draw(st.sampled_from(TIMES)),
        draw(st.sampled_from(WINDOWS)),
        draw(st.integers(1, 6)),
    )


def rule_set(delay: str, at: str | None, window: tuple[str, str] | None) -> RuleSet:
    rule = Rule.model_validate(
        {
            "id": "r",
            "kind": "transactional",
            "when": {"event": "order.created"},
            "send": {"after": delay, "time": at},
            "send_window": {"days": window[0], "hours": window[1]} if window else None,
            "template": "t",
        }
    )
    return RuleSet(rules=(rule,), version="test")


@settings(max_examples=600, deadline=None)
@given(case=cases())
def test_send_times_respect_event_window_and_local_time(case: Case) -> None:
    zone, placed, delay, at, window, quantity = case
    tz = ZoneInfo(zone)
    rules = rule_set(delay, at, window)
    [planned] = plan_order_event(
        event="order.created",
        occurred_at=placed,
        order=OrderFacts(
            id=1,
            status="open",
            placed_at=placed,
            items=(ItemFacts("SKU", "cat", quantity=quantity),),
        ),
        customer_id=1,
        rules=rules,
        tz=tz,
    )
    send_at = planned.send_at
    assert send_at.tzinfo is not None
    assert send_at >= placed  # never before the event
    spec = rules.rules[0].send_window
    if spec is not None:
        assert next_send_time(send_at, window=spec.window, tz=tz) == send_at
    elif at is not None:
        hour, minute = (int(part) for part in at.split(":"))
        local_day = send_at.astimezone(tz).date()
        on_time = [
            at_local_time(day, time(hour, minute), tz=tz)
            for day in (local_day - timedelta(days=1), local_day)
        ]
        assert send_at in on_time
