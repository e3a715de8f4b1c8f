"""DSN and ARF parsing (pure): what each report means, and how it names our message."""

from __future__ import annotations

from app.feedback.model import bounce_kind
from app.feedback.references import make_reference, verp_address
from app.feedback.reports import parse_report
from app.models import FeedbackKind
from tests.feedback.conftest import BOUNCE_ADDRESS
from tests.feedback.samples import arf, dsn

SECRET = "a-secret-key-of-the-shop-0123456789"
REFERENCE = make_reference(4_101_776, secret=SECRET)
ORIGINAL = (
    b"Date: Fri, 20 Nov 2026 10:00:00 +0000\r\n"
    b"From: Baumhaus Kindermoebel <shop@baumhaus-moebel.de>\r\n"
    b"To: juergen.weiss@example.org\r\n"
    b"Subject: Danke =?utf-8?q?f=C3=BCr?= Ihre Bestellung\r\n"
    b"Message-ID: <9f2c41d0e8b7a6c5d4e3f2a1b0c9d8e7@baumhaus-moebel.de>\r\n"
    + f"X-Aftersale-Message: {REFERENCE}\r\n".encode()
    + b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nDanke!\r\n"
)


def test_a_failed_5_1_1_is_a_hard_bounce_named_by_its_verp_address() -> None:
    to = verp_address(BOUNCE_ADDRESS, REFERENCE)
    [report] = parse_report(dsn(ORIGINAL, to=to), bounce_address=BOUNCE_ADDRESS)
    assert report.kind == FeedbackKind.HARD_BOUNCE
    assert report.recipient == "juergen.weiss@example.org"
    assert report.reference == REFERENCE
    assert report.smtp_message_id == "<9f2c41d0e8b7a6c5d4e3f2a1b0c9d8e7@baumhaus-moebel.de>"
    assert report.detail.startswith("DSN failed 5.1.1 550 5.1.1")
    assert report.provider == "mail"
    assert "juergen" not in report.event_id  # ids are digests: no address in a unique key


def test_without_verp_the_returned_header_names_the_message() -> None:
    [report] = parse_report(dsn(ORIGINAL, to="shop@baumhaus-moebel.de"), bounce_address=None)
    assert report.reference == REFERENCE


def test_delays_and_policy_refusals_are_soft() -> None:
    to = verp_address(BOUNCE_ADDRESS, REFERENCE)
    [delayed] = parse_report(
        dsn(
            ORIGINAL,
            to=to,
            action="delayed",
            status="4.2.2",
            diagnostic="smtp; 452 4.2.2 Mailbox full",
        ),
        bounce_address=BOUNCE_ADDRESS,
    )
    assert delayed.kind == FeedbackKind.SOFT_BOUNCE
    [policy] = parse_report(
        dsn(ORIGINAL, to=to, status="5.7.1", diagnostic="smtp; 550 5.7.1 rejected by policy"),
        bounce_address=BOUNCE_ADDRESS,
    )
    assert policy.kind == FeedbackKind.SOFT_BOUNCE
    assert parse_report(dsn(ORIGINAL, to=to, action="delivered", status="2.0.0")) == []
    assert bounce_kind(action="failed", status="5.2.1") == FeedbackKind.HARD_BOUNCE
    assert bounce_kind(action="relayed", status="2.0.0") is None


def test_an_arf_abuse_report_is_a_complaint_even_with_the_recipient_redacted() -> None:
    [report] = parse_report(
        arf(ORIGINAL.replace(b"To: juergen.weiss@example.org", b"To: redacted")),
        bounce_address=BOUNCE_ADDRESS,
    )
    assert report.kind == FeedbackKind.COMPLAINT
    assert report.recipient is None
    assert report.reference == REFERENCE
    verp = verp_address(BOUNCE_ADDRESS, REFERENCE)
    [named] = parse_report(
        arf(b"Subject: cut\r\n\r\n", original_mail_from=verp, original_rcpt_to="Anna@X.de"),
        bounce_address=BOUNCE_ADDRESS,
    )
    assert (named.reference, named.recipient) == (REFERENCE, "anna@x.de")
    assert parse_report(arf(ORIGINAL, feedback_type="not-spam")) == []


def test_mail_that_is_no_report_yields_nothing() -> None:
    assert parse_report(ORIGINAL) == []
    assert parse_report(b"\x00\xff garbage") == []
    auto_reply = b"Subject: Out of office\r\nContent-Type: multipart/report; report-type=x\r\n\r\n"
    assert parse_report(auto_reply) == []
