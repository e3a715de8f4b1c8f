from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.rules.windows import SendWindow, at_local_time, next_send_time, parse_send_window

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
ZONE_NAMES = [
    "America/New_York",
    "Europe/London",
    "Europe/Moscow",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
]
# No DST in 2026-2028, so "inside" can be checked on the plain wall clock as well.
FIXED_OFFSET_ZONES = {"Europe/Moscow", "Asia/Kolkata", "UTC"}
ALL_DAYS = frozenset(range(7))
MON_FRI = frozenset(range(5))
QUARTER = timedelta(minutes=15)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def ny(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, NEW_YORK, fold=fold)


def window(days: frozenset[int], start: str, end: str) -> SendWindow:
    return SendWindow(days=days, start=time.fromisoformat(start), end=time.fromisoformat(end))


# --- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-sat", {0, 1, 2, 3, 4, 5}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon,wed-fri", {0, 2, 3, 4}),
        (["mon", "tue"], {0, 1}),
        (["mon-wed", "sun"], {0, 1, 2, 6}),
        ("daily", set(range(7))),
        ("DAILY", set(range(7))),
        (None, set(range(7))),
        ("Mon-FRI", {0, 1, 2, 3, 4}),
        (" sat , sun ", {5, 6}),
        ("mon - wed", {0, 1, 2}),
        ("fri-mon", {4, 5, 6, 0}),
        ("wed-wed", {2}),
        ("mon,mon", {0}),
    ],
)
def test_parse_days(days: str | list[str] | None, expected: set[int]) -> None:
    assert parse_send_window(days, None).days == frozenset(expected)


@pytest.mark.parametrize(
    ("hours", "start", "end"),
    [
        ("09:00-20:00", time(9), time(20)),
        ("9:00-17:30", time(9), time(17, 30)),
        (" 08:15 - 12:45 ", time(8, 15), time(12, 45)),
        ("22:00-06:00", time(22), time(6)),
        (None, time(0), time(0)),
        ("00:00-24:00", time(0), time(0)),
        ("18:30-24:00", time(18, 30), time(0)),
        ("00:00-00:01", time(0), time(0, 1)),
    ],
)
def test_parse_hours(hours: str | None, start: time, end: time) -> None:
    parsed = parse_send_window("daily", hours)
    assert (parsed.start, parsed.end) == (start, end)


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("mun", "bad day 'mun': use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri"),
        ("mon,tuesday", "bad day 'tuesday'"),
        ("mon-fir", "bad day 'fir'"),
        ("mon-", "bad day ''"),
        ("mon,,fri", "bad day ''"),
        ("", "bad day ''"),
        ("weekdays", "bad day 'weekdays'"),
        (["mon", "xyz"], "bad day 'xyz'"),
        ([], "bad days \\[\\]: name at least one day"),
        (["mon", 3], "bad day 3"),
    ],
)
def test_bad_days_say_how_to_write_them(days: str | list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_send_window(days, "09:00-20:00")


@pytest.mark.parametrize(
    "hours",
    [
        "",
        "9-17",
        "09:00",
        "09:00-",
        "0900-1700",
        "09.00-17.00",
        "24:00-06:00",
        "09:00-24:30",
        "09:00-25:00",
        "25:00-06:00",
        "09:60-10:00",
        "09:00-10:75",
        "９:00-10:00",
    ],
)
def test_bad_hours_say_how_to_write_them(hours: str) -> None:
    with pytest.raises(ValueError, match="use HH:MM-HH:MM in 24-hour local time"):
        parse_send_window("daily", hours)


@pytest.mark.parametrize("hours", ["09:00-09:00", "00:00-00:00"])
def test_empty_or_full_day_hours_are_refused_as_ambiguous(hours: str) -> None:
    with pytest.raises(ValueError, match="start and end are equal; leave hours out"):
        parse_send_window("daily", hours)


@pytest.mark.parametrize(
    ("days", "message"),
    [(frozenset(), "at least one day"), (frozenset({0, 7}), "0 \\(Monday\\) .. 6 \\(Sunday\\)")],
)
def test_window_needs_real_days(days: frozenset[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SendWindow(days=days, start=time(9), end=time(17))


def test_window_times_are_wall_clock() -> None:
    with pytest.raises(ValueError, match="without a time zone"):
        SendWindow(days=ALL_DAYS, start=time(9, tzinfo=UTC), end=time(17))


# --- next_send_time: ordinary days (2026-06-01 is a Monday) ----------------------------


def test_evening_send_moves_to_next_mornings_window() -> None:
    tuesday_evening = ny(2026, 6, 2, 21, 30)
    result = next_send_time(tuesday_evening, window=window(ALL_DAYS, "09:00", "20:00"), tz=NEW_YORK)
    assert result == ny(2026, 6, 3, 9)
    assert result.tzinfo is UTC


def test_send_moves_to_next_allowed_day() -> None:
    tuesday_evening = ny(2026, 6, 2, 21, 30)
    mon_thu = parse_send_window("mon,thu", "09:00-20:00")
    assert next_send_time(tuesday_evening, window=mon_thu, tz=NEW_YORK) == ny(2026, 6, 4, 9)


def test_saturday_evening_with_weekdays_moves_to_monday_morning() -> None:
    saturday_evening = ny(2026, 6, 6, 19)
    weekdays = parse_send_window("mon-fri", "09:00-20:00")
    assert next_send_time(saturday_evening, window=weekdays, tz=NEW_YORK) == ny(2026, 6, 8, 9)


def test_send_before_the_window_waits_for_it_to_open() -> None:
    early = ny(2026, 6, 3, 7, 5)
    result = next_send_time(early, window=window(MON_FRI, "09:00", "20:00"), tz=NEW_YORK)
    assert result == ny(2026, 6, 3, 9)


@pytest.mark.parametrize(
    "inside",
    [
        ny(2026, 6, 3, 9),
        ny(2026, 6, 3, 12, 34, 56, 789),
        ny(2026, 6, 3, 19, 59, 59, 999_999),
    ],
)
def test_send_inside_the_window_is_unchanged(inside: datetime) -> None:
    result = next_send_time(inside, window=window(MON_FRI, "09:00", "20:00"), tz=NEW_YORK)
    assert result == inside
    assert result.tzinfo is UTC
    assert result.replace(tzinfo=None) == inside.astimezone(UTC).replace(tzinfo=None)


def test_window_end_is_exclusive() -> None:
    result = next_send_time(
        ny(2026, 6, 3, 20), window=window(MON_FRI, "09:00", "20:00"), tz=NEW_YORK
    )
    assert result == ny(2026, 6, 4, 9)


def test_earliest_may_be_in_any_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # 2026-06-03 10:30 in Tokyo is 2026-06-02 21:30 in New York.
    earliest = datetime(2026, 6, 3, 10, 30, tzinfo=tokyo)
    result = next_send_time(earliest, window=window(ALL_DAYS, "09:00", "20:00"), tz=NEW_YORK)
    assert result == ny(2026, 6, 3, 9)


def test_no_window_returns_earliest_in_utc() -> None:
    earliest = ny(2026, 6, 6, 23, 59)
    result = next_send_time(earliest, window=None, tz=NEW_YORK)
    assert result == earliest
    assert result.tzinfo is UTC


def test_naive_earliest_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send_time(datetime(2026, 6, 3, 12), window=None, tz=NEW_YORK)


@pytest.mark.parametrize(
    ("earliest", "expected"),
    [
        (ny(2026, 6, 5, 21), ny(2026, 6, 5, 22)),  # Friday before the window
        (ny(2026, 6, 5, 23), ny(2026, 6, 5, 23)),  # Friday night, inside
        (ny(2026, 6, 6, 1, 30), ny(2026, 6, 6, 1, 30)),  # Saturday small hours: Friday's window
        (ny(2026, 6, 6, 6), ny(2026, 6, 12, 22)),  # closed at 06:00 Saturday
        (ny(2026, 6, 6, 22), ny(2026, 6, 12, 22)),  # Saturday night is not a "fri" window
        (ny(2026, 6, 4, 23), ny(2026, 6, 5, 22)),  # Thursday night is not either
        (ny(2026, 6, 5, 5), ny(2026, 6, 5, 22)),  # Friday 05:00 belongs to Thursday's window
    ],
)
def test_window_crossing_midnight_belongs_to_its_start_day(
    earliest: datetime, expected: datetime
) -> None:
    friday_nights = parse_send_window("fri", "22:00-06:00")
    assert next_send_time(earliest, window=friday_nights, tz=NEW_YORK) == expected


def test_window_ending_at_midnight() -> None:
    evenings = parse_send_window("mon-fri", "18:30-24:00")
    assert next_send_time(ny(2026, 6, 5, 23, 59), window=evenings, tz=NEW_YORK) == ny(
        2026, 6, 5, 23, 59
    )
    assert next_send_time(ny(2026, 6, 6, 0, 0), window=evenings, tz=NEW_YORK) == ny(
        2026, 6, 8, 18, 30
    )


def test_whole_day_window_takes_any_time_on_allowed_days() -> None:
    weekends = parse_send_window("sat,sun", None)
    assert next_send_time(ny(2026, 6, 6, 0), window=weekends, tz=NEW_YORK) == ny(2026, 6, 6)
    assert next_send_time(ny(2026, 6, 7, 23, 59), window=weekends, tz=NEW_YORK) == ny(
        2026, 6, 7, 23, 59
    )
    assert next_send_time(ny(2026, 6, 8, 0), window=weekends, tz=NEW_YORK) == ny(2026, 6, 13)


# --- at_local_time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "at", "expected"),
    [
        # New York springs forward 02:00 EST -> 03:00 EDT (07:00 UTC).
        (NEW_YORK, date(2026, 3, 8), time(1, 30), utc(2026, 3, 8, 6, 30)),
        (NEW_YORK, date(2026, 3, 8), time(2, 0), utc(2026, 3, 8, 7)),
        (NEW_YORK, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7)),
        (NEW_YORK, date(2026, 3, 8), time(3, 0), utc(2026, 3, 8, 7)),
        (NEW_YORK, date(2026, 3, 8), time(3, 30), utc(2026, 3, 8, 7, 30)),
        # New York falls back 02:00 EDT -> 01:00 EST (06:00 UTC); first 01:30 is EDT.
        (NEW_YORK, date(2026, 11, 1), time(0, 30), utc(2026, 11, 1, 4, 30)),
        (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
        (NEW_YORK, date(2026, 11, 1), time(2, 30), utc(2026, 11, 1, 7, 30)),
        # London springs forward 01:00 GMT -> 02:00 BST (01:00 UTC).
        (LONDON, date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1)),
        (LONDON, date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 30)),
        # London falls back 02:00 BST -> 01:00 GMT (01:00 UTC); first 01:30 is BST.
        (LONDON, date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),
        (LONDON, date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 2, 30)),
        # Lord Howe moves by half an hour: 02:00 -> 02:30 and 02:00 -> 01:30.
        (LORD_HOWE, date(2026, 10, 4), time(2, 15), utc(2026, 10, 3, 15, 30)),
        (LORD_HOWE, date(2026, 4, 5), time(1, 45), utc(2026, 4, 4, 14, 45)),
        # Microseconds survive the gap search.
        (NEW_YORK, date(2026, 3, 8), time(2, 59, 59, 999_999), utc(2026, 3, 8, 7)),
    ],
)
def test_at_local_time_across_dst(tz: ZoneInfo, day: date, at: time, expected: datetime) -> None:
    result = at_local_time(day, at, tz=tz)
    assert result == expected
    assert result.tzinfo is UTC


def test_at_local_time_ignores_fold_on_the_input() -> None:
    assert at_local_time(date(2026, 11, 1), time(1, 30, fold=1), tz=NEW_YORK) == utc(
        2026, 11, 1, 5, 30
    )


def test_at_local_time_needs_a_wall_clock_time() -> None:
    with pytest.raises(ValueError, match="without a time zone"):
        at_local_time(date(2026, 6, 1), time(9, tzinfo=UTC), tz=NEW_YORK)


# --- DST nights --------------------------------------------------------------------------

DST_NIGHTS = [
    pytest.param(NEW_YORK, date(2026, 3, 8), id="new-york-spring"),
    pytest.param(NEW_YORK, date(2026, 11, 1), id="new-york-fall"),
    pytest.param(LONDON, date(2026, 3, 29), id="london-spring"),
    pytest.param(LONDON, date(2026, 10, 25), id="london-fall"),
]
DST_STARTS = [pytest.param("01:30", id="01:30"), pytest.param("02:30", id="02:30")]


def _quarter_hour_window(start: str) -> SendWindow:
    opens = time.fromisoformat(start)
    closes = (datetime.combine(date(2026, 1, 1), opens) + QUARTER).time()
    return SendWindow(days=ALL_DAYS, start=opens, end=closes)


@pytest.mark.parametrize("start", DST_STARTS)
@pytest.mark.parametrize(("tz", "night"), DST_NIGHTS)
def test_window_on_a_dst_night_opens_once(tz: ZoneInfo, night: date, start: str) -> None:
    # A 15-minute window may fall wholly into the gap; it then shrinks to the one instant after
    # the gap. At fall-back it is open during the first pass of the clock only.
    send_window = _quarter_hour_window(start)
    expected = at_local_time(night, time.fromisoformat(start), tz=tz)
    day_start = at_local_time(night, time(0), tz=tz)
    assert next_send_time(day_start, window=send_window, tz=tz) == expected

    minute = timedelta(minutes=1)
    probes = (day_start + i * minute for i in range(26 * 60))
    open_minutes = [p for p in probes if next_send_time(p, window=send_window, tz=tz) == p]
    open_tonight = [p for p in open_minutes if p.astimezone(tz).date() == night]
    assert open_tonight[0] == expected
    run = open_tonight[-1] - open_tonight[0]
    assert run == (len(open_tonight) - 1) * minute  # one contiguous stretch
    assert len(open_tonight) in (1, 15)


@pytest.mark.parametrize("start", DST_STARTS)
@pytest.mark.parametrize(("tz", "night"), DST_NIGHTS)
def test_daily_sends_across_dst_are_neither_doubled_nor_lost(
    tz: ZoneInfo, night: date, start: str
) -> None:
    send_window = _quarter_hour_window(start)
    days = [night + timedelta(days=offset) for offset in range(-2, 3)]

    per_day = [
        next_send_time(at_local_time(day, time(0), tz=tz), window=send_window, tz=tz)
        for day in days
    ]
    # Chained the way a scheduler would: after each send, ask again once the window closed.
    chained = [per_day[0]]
    for _ in range(4):
        chained.append(next_send_time(chained[-1] + QUARTER, window=send_window, tz=tz))

    assert chained == per_day
    assert len(set(per_day)) == 5
    assert [send.astimezone(tz).date() for send in per_day] == days
    gaps = [later - earlier for earlier, later in pairwise(per_day)]
    assert all(timedelta(hours=23) <= gap <= timedelta(hours=25) for gap in gaps)


def test_second_pass_of_the_clock_at_fall_back_does_not_reopen_the_window() -> None:
    send_window = window(ALL_DAYS, "01:30", "01:45")
    second_pass = ny(2026, 11, 1, 1, 30, fold=1)  # 01:30 EST, an hour after 01:30 EDT
    assert next_send_time(second_pass, window=send_window, tz=NEW_YORK) == ny(2026, 11, 2, 1, 30)


# --- properties --------------------------------------------------------------------------

zones = st.sampled_from(ZONE_NAMES).map(ZoneInfo)
quarter_hours = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
small_hours = st.builds(time, st.integers(0, 3), st.sampled_from([0, 15, 30, 45]))
window_times = st.one_of(quarter_hours, small_hours)
windows = st.builds(
    SendWindow,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=window_times,
    end=window_times,
)
# UTC instants of DST changes in the zones that have them, to aim examples at DST nights.
TRANSITIONS = {
    "America/New_York": [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2027, 3, 14, 7)],
    "Europe/London": [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2028, 10, 29, 1)],
    "Australia/Lord_Howe": [utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30)],
}


@st.composite
def zone_and_earliest(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A send zone and an aware `earliest` in any zone, often within a day of a DST change."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(TRANSITIONS)))
        change = draw(st.sampled_from(TRANSITIONS[name]))
        shift = draw(st.integers(-36 * 60, 36 * 60)) * timedelta(minutes=1)
        jitter = draw(st.sampled_from([timedelta(0), timedelta(seconds=draw(st.integers(1, 59)))]))
        earliest_utc = change + shift + jitter
        return ZoneInfo(name), earliest_utc.astimezone(draw(zones))
    earliest = draw(
        st.datetimes(
            min_value=datetime(2026, 1, 1),
            max_value=datetime(2028, 12, 31, 23, 59, 59),
            timezones=zones,
        )
    )
    return draw(zones), earliest


def first_reading(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Oracle for at_local_time by brute force: the first quarter-hour UTC instant at which the
    clock reads `at` or later. Exact because every test zone's offsets and changes, and every
    generated window time, lie on the quarter hour."""
    wall = datetime.combine(day, at)
    candidate = wall.replace(tzinfo=UTC) - timedelta(hours=15)  # before any zone's reading
    while candidate.astimezone(tz).replace(tzinfo=None) < wall:
        candidate += QUARTER
    return candidate


def oracle_occurrences(
    send_window: SendWindow, tz: ZoneInfo, around: datetime
) -> list[tuple[datetime, datetime]]:
    local_day = around.astimezone(tz).date()
    occurrences = []
    for offset in range(-2, 10):
        day = local_day + timedelta(days=offset)
        if day.weekday() in send_window.days:
            close_day = day + timedelta(days=1) if send_window.end <= send_window.start else day
            occurrences.append(
                (
                    first_reading(day, send_window.start, tz),
                    first_reading(close_day, send_window.end, tz),
                )
            )
    return occurrences


def oracle_inside(instant: datetime, occurrences: list[tuple[datetime, datetime]]) -> bool:
    # A window swallowed by the spring-forward gap is open for the single instant after it.
    return any(
        opens <= instant < closes or opens == closes == instant for opens, closes in occurrences
    )


def wall_clock_inside(instant: datetime, send_window: SendWindow, tz: ZoneInfo) -> bool:
    """The naive reading of a window, valid where the clock never jumps."""
    local = instant.astimezone(tz)
    today, yesterday, now = local.weekday(), (local.weekday() - 1) % 7, local.time()
    start, end, days = send_window.start, send_window.end, send_window.days
    if start < end:
        return today in days and start <= now < end
    return (today in days and now >= start) or (yesterday in days and now < end)


def probes_before(earliest: datetime, result: datetime) -> Iterator[datetime]:
    """`earliest` and every UTC quarter hour after it, up to but excluding `result`.

    Windows open and close on quarter hours, so if no probe is inside, nothing in between is.
    """
    if earliest < result:
        yield earliest
    probe = earliest.replace(minute=earliest.minute - earliest.minute % 15, second=0, microsecond=0)
    probe += QUARTER
    while probe < result:
        yield probe
        probe += QUARTER


@settings(max_examples=400, deadline=None)
@given(zone_and_earliest(), windows)
@example((NEW_YORK, ny(2026, 11, 1, 1, 40, fold=1)), window(ALL_DAYS, "01:30", "02:00"))
@example((NEW_YORK, ny(2026, 11, 1, 0, 10)), window(ALL_DAYS, "20:00", "01:30"))
@example((NEW_YORK, ny(2026, 3, 7, 23)), window(frozenset({6}), "02:00", "02:30"))
@example((LONDON, utc(2026, 3, 28, 23)), window(ALL_DAYS, "01:15", "02:00"))
@example((LORD_HOWE, utc(2026, 10, 3, 12)), window(ALL_DAYS, "02:00", "02:15"))
def test_result_is_the_first_instant_inside_the_window(
    zone_and_moment: tuple[ZoneInfo, datetime], send_window: SendWindow
) -> None:
    tz, earliest = zone_and_moment
    earliest_utc = earliest.astimezone(UTC)
    result = next_send_time(earliest, window=send_window, tz=tz)

    assert result.tzinfo is UTC
    assert earliest_utc <= result <= earliest_utc + timedelta(days=8)
    occurrences = oracle_occurrences(send_window, tz, earliest_utc)
    assert oracle_inside(result, occurrences)
    assert not any(oracle_inside(p, occurrences) for p in probes_before(earliest_utc, result))
    assert next_send_time(result, window=send_window, tz=tz) == result
    if tz.key in FIXED_OFFSET_ZONES:
        assert wall_clock_inside(result, send_window, tz)
        assert not any(
            wall_clock_inside(p, send_window, tz) for p in probes_before(earliest_utc, result)
        )


@settings(max_examples=300, deadline=None)
@given(st.dates(date(2026, 1, 1), date(2028, 12, 31)), st.times(), zones)
@example(date(2026, 3, 8), time(2, 30), NEW_YORK)
@example(date(2026, 11, 1), time(1, 30), NEW_YORK)
@example(date(2026, 10, 4), time(2, 29, 59, 999_999), LORD_HOWE)
def test_at_local_time_is_the_first_instant_the_clock_reads_it(
    day: date, at: time, tz: ZoneInfo
) -> None:
    wall = datetime.combine(day, at.replace(fold=0))
    result = at_local_time(day, at, tz=tz)
    assert result.tzinfo is UTC
    assert result.astimezone(tz).replace(tzinfo=None) >= wall
    just_before = result - timedelta(microseconds=1)
    assert just_before.astimezone(tz).replace(tzinfo=None) < wall
