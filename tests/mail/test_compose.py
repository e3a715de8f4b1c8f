from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.mail.compose import clean_header_value, compose_message, message_bytes
from app.mail.templates import RenderedEmail

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
BASE_HEADERS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"]
INJECTIONS = [
    "Anna\r\nBcc: evil@example.com",
    "Anna\nBcc: evil@example.com",
    "Anna\rBcc: evil@example.com",
    "Anna\x00Bcc: evil@example.com",
    "=?utf-8?q?a=0D=0ABcc:_x@y?=",
    "=?utf-8?b?YQ0KQmNjOiB4QHk=?=",
    "x =?utf-8?q?=0A?= =?utf-8?q?Bcc:_x@y?= y",
    "Anna\u2028Bcc: evil@example.com",
    "Anna\x85Bcc: evil@example.com",
]


def compose(**overrides: Any) -> tuple[EmailMessage, str]:
    arguments: dict[str, Any] = {
        "rendered": RenderedEmail(subject="Thanks", text="Hello\n", html="<p>Hello</p>"),
        "from_name": "Tea & Co",
        "from_address": "shop@example.com",
        "to_name": "Anna Ivanova",
        "to_address": "anna@example.org",
        "message_id_domain": "mail.example.com",
        "now": NOW,
    }
    arguments.update(overrides)
    return compose_message(**arguments)


def parse(msg: EmailMessage) -> EmailMessage:
    # Parsed back the way a receiving server sees it (CRLF turned into LF).
    raw = message_bytes(msg).replace(b"\r\n", b"\n")
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_structure_and_headers() -> None:
    msg, message_id = compose(reply_to="Help Desk <help@example.com>")
    raw = message_bytes(msg)
    parsed = parse(msg)

    assert parsed.keys() == [
        "Date",
        "From",
        "To",
        "Reply-To",
        "Subject",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
    ]
    assert parsed["Date"] == "Wed, 01 May 2024 12:30:00 +0000"
    assert parsed["From"].addresses[0].display_name == "Tea & Co"
    assert parsed["From"].addresses[0].addr_spec == "shop@example.com"
    assert parsed["To"] == "Anna Ivanova <anna@example.org>"
    assert parsed["Reply-To"] == "Help Desk <help@example.com>"
    assert parsed["Message-ID"] == message_id
    assert re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.com>", message_id)
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert text.get_content_charset() == "utf-8"
    assert text.get_content() == "Hello\n"
    assert html.get_content() == "<p>Hello</p>\n"
    # SMTP policy: every line ends in CRLF, and nothing is 8-bit.
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert raw.isascii()


def test_message_ids_are_unique() -> None:
    ids = {compose()[1] for _ in range(50)}
    assert len(ids) == 50


def test_non_ascii_names_and_subject_are_rfc2047_encoded() -> None:
    rendered = RenderedEmail(
        subject="Спасибо за заказ №1001", text="Текст\n", html="<p>Привет, Анна</p>"
    )
    msg, _ = compose(rendered=rendered, to_name="Анна Иванова", from_name="山田商店")
    raw = message_bytes(msg)
    header_block = raw.split(b"\r\n\r\n", 1)[0]

    assert raw.isascii()
    assert b"=?utf-8?" in header_block
    parsed = parse(msg)
    assert parsed["To"].addresses[0].display_name == "Анна Иванова"
    assert parsed["From"].addresses[0].display_name == "山田商店"
    assert parsed["Subject"] == "Спасибо за заказ №1001"
    text, html = parsed.iter_parts()
    assert text.get_content() == "Текст\n"
    assert "Привет, Анна" in html.get_content()


def test_idn_domain_is_punycoded() -> None:
    msg, _ = compose(to_address="anna@почта.рф")
    assert parse(msg)["To"].addresses[0].domain == "xn--80a1acny.xn--p1ai"


@pytest.mark.parametrize("value", INJECTIONS)
def test_header_injection_is_impossible(value: str) -> None:
    msg, _ = compose(
        rendered=RenderedEmail(subject=value, text="x\n", html="<p>x</p>"),
        from_name=value,
        to_name=value,
    )
    parsed = parse(msg)

    assert parsed.keys() == BASE_HEADERS
    assert "Bcc" not in parsed
    for name in ("From", "To", "Subject"):
        assert not re.search(r"[\x00-\x1f]", str(parsed[name]))
    assert parsed["To"].addresses[0].addr_spec == "anna@example.org"
    assert len(parsed["To"].addresses) == 1


@pytest.mark.parametrize("value", INJECTIONS)
def test_reply_to_and_extra_headers_are_cleaned(value: str) -> None:
    msg, _ = compose(
        reply_to=f'"{value}" <help@example.com>',
        extra_headers={"X-Campaign": f"<https://x.example/u>{value}"},
    )
    parsed = parse(msg)
    assert "Bcc" not in parsed
    assert sorted(parsed.keys()) == sorted([*BASE_HEADERS, "Reply-To", "X-Campaign"])
    assert parsed["Reply-To"].addresses[0].addr_spec == "help@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "anna@example.org\r\nBcc: evil@example.com",
        "anna@example.org, evil@example.com",
        "Anna <anna@example.org>",
        "anna@example.org\x00",
        "no-at-sign",
        "@example.org",
        "anna@",
        " anna@example.org",
        "анна@example.org",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError):
        compose(to_address=address)
    with pytest.raises(ValueError):
        compose(from_address=address)


def test_reply_to_must_be_one_address() -> None:
    with pytest.raises(ValueError):
        compose(reply_to="a@example.com, b@example.com")


@pytest.mark.parametrize("name", ["Bcc", "To", "content-type", "X-Bad\r\nBcc", "X Space", ""])
def test_extra_headers_cannot_override_or_smuggle(name: str) -> None:
    with pytest.raises(ValueError):
        compose(extra_headers={name: "x"})


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        compose(now=datetime(2024, 5, 1, 12, 30))


def test_date_keeps_the_given_offset() -> None:
    msg, _ = compose(now=NOW.astimezone(timezone(timedelta(hours=3))))
    assert parse(msg)["Date"] == "Wed, 01 May 2024 15:30:00 +0300"


def test_bad_message_id_domain_is_refused() -> None:
    with pytest.raises(ValueError):
        compose(message_id_domain="example.com>\r\nBcc: x@y")


def test_clean_header_value() -> None:
    assert clean_header_value("  a\r\n\tb\x00\x00c  ") == "a b c"
    assert clean_header_value("=?utf-8?q?a=0D=0ABcc:_x@y?=") == "a Bcc: x@y"
    assert clean_header_value("Анна =?utf-8?b?0JjQstCw0L3QvtCy0LA=?=") == "Анна Иванова"
    assert "=?" not in clean_header_value("=?x-unknown?q?abc?=")


@settings(max_examples=150, deadline=None)
@given(name=st.text(max_size=40), subject=st.text(max_size=80))
def test_arbitrary_names_and_subjects_never_add_headers(name: str, subject: str) -> None:
    msg, _ = compose(
        rendered=RenderedEmail(subject=subject, text="x\n", html="<p>x</p>"),
        from_name=name,
        to_name=name,
    )
    raw = message_bytes(msg)
    parsed = parse(msg)

    assert raw.isascii()
    assert parsed.keys() == BASE_HEADERS
    assert [address.addr_spec for address in parsed["To"].addresses] == ["anna@example.org"]
    assert [address.addr_spec for address in parsed["From"].addresses] == ["shop@example.com"]
    # Python's folder may add or (CPython's encoder, rarely: a space right where it splits
    # two encoded-words) drop a space; nothing else about the subject or name may change.
    assert parsed["Subject"].replace(" ", "") == clean_header_value(subject).replace(" ", "")
    display_name = parsed["To"].addresses[0].display_name
    assert display_name.replace(" ", "") == clean_header_value(name).replace(" ", "")
