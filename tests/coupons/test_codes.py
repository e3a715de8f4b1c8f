"""The pure parts: reading a codes file, pool names, and crediting an order to a coupon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.coupons.codes import code_key, pool_problem, read_codes
from app.stats.attribution import (
    AttributionPolicy,
    Credit,
    HeldOutMessage,
    Redeemed,
    Touch,
    Via,
    credit,
)


def test_codes_with_header_expiry_and_trimming() -> None:
    found = read_codes(
        "code,expires_at\n  ABC-1  \n\nDEF-2 , 2027-01-31\nGHI-3,2027-01-01T10:00+02:00\n"
    )
    assert [(line.line, line.code, line.expires_at) for line in found.codes] == [
        (2, "ABC-1", None),
        (4, "DEF-2", datetime(2027, 1, 31, tzinfo=UTC)),
        (5, "GHI-3", datetime(2027, 1, 1, 8, 0, tzinfo=UTC)),
    ]
    assert found.refused == []


def test_a_first_line_that_is_a_code_is_kept() -> None:
    assert [line.code for line in read_codes("CODE1\nCODE2").codes] == ["CODE1", "CODE2"]


def test_refused_lines_name_their_number_and_why() -> None:
    text = "\n".join(
        [
            "GOOD-1",
            "TWO WORDS",
            "X" * 65,
            "TAB\tINSIDE",
            "NUL\x00",
            ",2027-01-01",
            "LATE,31/01/2027",
            "ZERO\u200bWIDTH",
            "MANY,2027-01-01,extra",
            "X" * 64,
        ]
    )
    found = read_codes(text)
    assert [line.code for line in found.codes] == ["GOOD-1", "X" * 64]
    assert [(r.line, r.message) for r in found.refused] == [
        (2, "code contains whitespace or a control character"),
        (3, "code longer than 64 characters"),
        (4, "code contains whitespace or a control character"),
        (5, "code contains whitespace or a control character"),
        (6, "empty code"),
        (7, "expires_at '31/01/2027' is not an ISO date or datetime (e.g. 2027-01-31)"),
        (8, "code contains whitespace or a control character"),
        (9, "more than two columns (code, expires_at)"),
    ]


def test_pool_names() -> None:
    assert pool_problem("BIRTHDAY_2027-a") is None
    assert pool_problem("birthday pool") is not None
    assert pool_problem("") is not None
    assert pool_problem("P" * 65) is not None


def test_codes_match_in_any_case() -> None:
    assert code_key(" Bday-7Q ") == code_key("BDAY-7q") == "bday-7q"


PLACED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = AttributionPolicy(window=timedelta(days=5), count_opens=False)


def test_a_redeemed_code_credits_its_message_before_any_click() -> None:
    found = credit(
        placed_at=PLACED,
        touches=[Touch(message_id=7, via=Via.CLICK, at=PLACED - timedelta(minutes=5))],
        held_out=[HeldOutMessage(message_id=8, send_at=PLACED - timedelta(days=1))],
        policy=POLICY,
        redeemed=[Redeemed(message_id=3, assigned_at=PLACED - timedelta(days=40))],
    )
    # Forty days is far outside the click window: a code names its message regardless.
    assert found == Credit(message_id=3, via=Via.COUPON)


def test_of_two_redeemed_codes_the_latest_handed_out_wins() -> None:
    found = credit(
        placed_at=PLACED,
        touches=[],
        held_out=[],
        policy=POLICY,
        redeemed=[
            Redeemed(message_id=4, assigned_at=PLACED - timedelta(days=3)),
            Redeemed(message_id=5, assigned_at=PLACED - timedelta(days=1)),
        ],
    )
    assert found == Credit(message_id=5, via=Via.COUPON)


def test_without_a_code_clicks_decide_as_before() -> None:
    touch = Touch(message_id=7, via=Via.CLICK, at=PLACED - timedelta(hours=1))
    found = credit(placed_at=PLACED, touches=[touch], held_out=[], policy=POLICY)
    assert found == Credit(message_id=7, via=Via.CLICK)
