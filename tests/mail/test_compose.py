from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import decode_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.mail.compose import (
    ComposedMessage,
    clean_header_value,
    compose_message,
    message_bytes,
)
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


def compose(**overrides: Any) -> tuple[ComposedMessage, str]:
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


def parse(msg: ComposedMessage) -> EmailMessage:
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
    # IDNA 2008, as mail providers resolve it: ß stays ß (IDNA 2003 made it "ss").
    msg, _ = compose(to_address="jens@straße.de")
    assert parse(msg)["To"].addresses[0].domain == "xn--strae-oqa.de"


def test_utf8_local_part_goes_in_the_header_as_utf8() -> None:
    # RFC 6532: the one case where a header is not ASCII; sent only with SMTPUTF8.
    msg, _ = compose(to_address="анна@почта.рф", to_name="Анна")
    raw = message_bytes(msg)
    assert "<анна@xn--80a1acny.xn--p1ai>".encode() in raw
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert body.isascii()
    # As a receiving server with SMTPUTF8 reads it: UTF-8 headers.
    received = email.message_from_string(raw.decode("utf-8"), policy=policy.default)
    assert received["To"].addresses[0].username == "анна"


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
        "анна..x@example.org",  # a UTF-8 local part is a dot-atom too
        "a" * 243 + "@example.org",  # past RFC 5321's 256-octet path
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


@pytest.mark.parametrize(
    "name", ["Bcc", "To", "content-type", "X-Bad\r\nBcc", "X Space", "", "X-" + "a" * 75]
)
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
    assert parsed["Subject"] == clean_header_value(subject)
    assert shown_name(raw, "To") == clean_header_value(name)


# Text that stresses the header encoder: long CJK and Cyrillic runs, ASCII specials that
# force quoting, would-be encoded-words, and plain long words.
_HEADER_TEXT = st.one_of(
    st.text(max_size=120),
    st.text(alphabet=st.sampled_from(list('ab "\\,;:<>@()[].=?_')), max_size=120),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), max_size=150),
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(min_codepoint=0x410, max_codepoint=0x44F), max_size=20),
            st.text(alphabet="abcXYZ019", min_size=1, max_size=90),
            st.sampled_from(["=?", "?=", "=?utf-8?q?", '"', "\\", ",", "é", "😀", "Ⅻ"]),
        ),
        max_size=25,
    ).map(" ".join),
)
_BODY = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x44F), min_size=80),
        st.sampled_from(
            ["\r", "\n", "\r\n", " ", "\t", " \n", "\n.\n", ".", "From me", "=", "\x0c"]
        ),
    ),
    max_size=15,
).map("".join)
_ENCODED_WORDS = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def set_content_text(body: str) -> str:
    # What EmailMessage.set_content stores: lines split at CR, LF or CRLF, joined by "\n",
    # and one "\n" at the end (so an empty body is "\n").
    return "\n".join(line.decode() for line in body.encode().splitlines()) + "\n"


def assert_wire_format(raw: bytes) -> None:
    assert raw.isascii()
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(word) <= 75 for word in _ENCODED_WORDS.findall(header_block))


def shown_name(raw: bytes, field: str) -> str:
    """The display name in `field` as an RFC 2047 reader shows it.

    RFC 2047 6.2: whitespace between two adjacent encoded-words is not text. CPython 3.11's
    address parser keeps it as a space (gh-128110, fixed in later versions), so for names
    with encoded-words the stricter legacy `decode_header` is the judge here.
    """
    header = BytesHeaderParser(policy=compat32).parsebytes(raw)[field]
    phrase = re.sub(r"\r?\n", "", header).rpartition(" <")[0]
    if "=?" not in phrase:
        name: str = (
            BytesParser(policy=policy.default).parsebytes(raw)[field].addresses[0].display_name
        )
        return name
    return "".join(
        part if isinstance(part, str) else part.decode(charset or "ascii")
        for part, charset in decode_header(phrase)
    )


def assert_no_defects(message: EmailMessage) -> None:
    for part in message.walk():
        assert not part.defects
        for name, value in part.items():
            assert not getattr(value, "defects", ()), (name, value)


@settings(max_examples=300, deadline=None)
@given(
    subject=_HEADER_TEXT,
    from_name=_HEADER_TEXT,
    to_name=_HEADER_TEXT,
    text=_BODY,
    html=_BODY,
)
def test_names_subject_and_bodies_come_back_exactly(
    subject: str, from_name: str, to_name: str, text: str, html: str
) -> None:
    msg, _ = compose(
        rendered=RenderedEmail(subject=subject, text=text, html=html),
        from_name=from_name,
        to_name=to_name,
        unsubscribe_url="https://x.example/u/" + "a" * 200,
        extra_headers={"X-Campaign": subject},
    )
    raw = message_bytes(msg)
    parsed = parse(msg)

    assert_wire_format(raw)
    assert_no_defects(parsed)
    assert parsed["Subject"] == parsed["X-Campaign"] == clean_header_value(subject)
    for field, name, address in (
        ("From", from_name, "shop@example.com"),
        ("To", to_name, "anna@example.org"),
    ):
        [mailbox] = parsed[field].addresses
        assert mailbox.addr_spec == address
        assert shown_name(raw, field) == clean_header_value(name)
        # CPython 3.11 may only add spaces between encoded-words (see shown_name).
        assert mailbox.display_name.replace(" ", "") == clean_header_value(name).replace(" ", "")
    assert parsed["List-Unsubscribe"] == "<https://x.example/u/" + "a" * 200 + ">"
    plain, rich = parsed.iter_parts()
    assert plain.get_content() == set_content_text(text)
    assert rich.get_content() == set_content_text(html)


@pytest.mark.parametrize(
    "subject",
    [
        " ".join(["Thank you for your order"] * 12),
        "x" * 300,
        " ".join(["Спасибо за ваш заказ №1001"] * 10),
        "山田商店" * 60,
        "Café Müller " * 20,
        'Re: "quoted" \\ text, with (specials) ' * 6,
    ],
)
def test_long_subjects_and_names_fold_within_78_characters(subject: str) -> None:
    msg, _ = compose(
        rendered=RenderedEmail(subject=subject, text="x\n", html="<p>x</p>"),
        from_name=subject,
        to_name=subject,
        extra_headers={"X-Campaign": subject},
    )
    raw = message_bytes(msg)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    parsed = parse(msg)

    assert_wire_format(raw)
    assert all(len(line) <= 78 for line in header_block.split(b"\r\n"))
    assert header_block.count(b"\r\nSubject:") == 1
    assert parsed["Subject"] == parsed["X-Campaign"] == clean_header_value(subject)
    assert shown_name(raw, "From") == shown_name(raw, "To") == clean_header_value(subject)
