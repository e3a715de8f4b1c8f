"""Bounce and complaint mail: DSN (RFC 3464) and ARF (RFC 5965), read with the stdlib. Pure.

A report is matched to our message by, in order: the VERP address it was sent to (our
envelope sender), the X-Aftersale-Message header of the original it returns, the original's
Message-ID. Anything else that arrives (auto-replies, plain-text bounces from very old
servers) yields no feedback and is only counted.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
from collections.abc import Iterable, Sequence
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from app.feedback.model import (
    MAIL,
    Feedback,
    angle_message_id,
    bounce_kind,
    event_digest,
)
from app.feedback.references import reference_in_address
from app.models import FeedbackKind

REFERENCE_HEADER = "X-Aftersale-Message"
_MAX_DETAIL = 500
# Feedback-Type values that mean "this recipient does not want this mail" (RFC 5965 7.3).
_COMPLAINT_TYPES = {"abuse", "fraud", "virus", "other"}


def parse_report(
    raw: bytes, *, envelope_recipients: Sequence[str] = (), bounce_address: str | None = None
) -> list[Feedback]:
    """The feedback in one piece of mail: a recipient each for a DSN, one for an ARF report."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        return []
    param = message.get_param("report-type")
    report_type = email.utils.collapse_rfc2231_value(param).lower() if param else ""
    report_id = _header(message, "Message-ID") or hashlib.sha256(raw).hexdigest()
    parts = list(message.walk())[1:]
    original = _original(parts)
    reference = _verp_reference(message, original, envelope_recipients, bounce_address) or (
        _header(original, REFERENCE_HEADER) if original is not None else None
    )
    smtp_message_id = angle_message_id(_header(original, "Message-ID")) if original else None
    if report_type == "delivery-status":
        return list(_dsn(parts, report_id, reference, smtp_message_id))
    if report_type == "feedback-report":
        return _arf(parts, original, report_id, reference, smtp_message_id, bounce_address)
    return []


def _dsn(
    parts: Sequence[Message], report_id: str, reference: str | None, smtp_message_id: str | None
) -> Iterable[Feedback]:
    status_part = next(
        (part for part in parts if part.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return
    blocks = status_part.get_payload()
    if not isinstance(blocks, list):
        return
    # The first block is about the message, the rest are one per recipient.
    for block in blocks[1:]:
        if not isinstance(block, Message):
            continue
        kind = bounce_kind(action=_header(block, "Action"), status=_header(block, "Status"))
        if kind is None:
            continue
        recipient = _address_field(_header(block, "Original-Recipient")) or _address_field(
            _header(block, "Final-Recipient")
        )
        status = _header(block, "Status") or ""
        diagnostic = _typed_value(_header(block, "Diagnostic-Code")) or ""
        detail = f"DSN {_header(block, 'Action') or ''} {status} {diagnostic}"
        yield Feedback(
            provider=MAIL,
            event_id=event_digest("dsn", report_id, recipient or "", kind),
            kind=kind,
            recipient=recipient,
            detail=_short(detail),
            reference=reference,
            smtp_message_id=smtp_message_id,
        )


def _arf(
    parts: Sequence[Message],
    original: Message | None,
    report_id: str,
    reference: str | None,
    smtp_message_id: str | None,
    bounce_address: str | None,
) -> list[Feedback]:
    fields = next(
        (part for part in parts if part.get_content_type() == "message/feedback-report"), None
    )
    if fields is None:
        return []
    payload = fields.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        report = payload[0]  # the email package parses message/* bodies as headers
    else:
        report = HeaderParser().parsestr(str(payload))
    feedback_type = (_header(report, "Feedback-Type") or "").lower()
    if feedback_type not in _COMPLAINT_TYPES:
        return []  # not-spam, auth-failure reports: nothing the recipient asked of us
    # The envelope sender of the original, when the report gives it: our VERP address.
    mail_from = _plain_address(_header(report, "Original-Mail-From"))
    if reference is None and mail_from and bounce_address:
        reference = reference_in_address(mail_from, bounce_address)
    # Many mailbox providers redact the recipient; the reference still finds the message.
    recipient = _address_field(_header(report, "Original-Rcpt-To")) or (
        _plain_address(_header(original, "To")) if original is not None else None
    )
    source = _header(report, "User-Agent") or _header(report, "Reported-Domain") or ""
    return [
        Feedback(
            provider=MAIL,
            event_id=event_digest("arf", report_id, recipient or ""),
            kind=FeedbackKind.COMPLAINT,
            recipient=recipient,
            detail=_short(f"ARF {feedback_type} {source}"),
            reference=reference,
            smtp_message_id=smtp_message_id,
        )
    ]


def _original(parts: Sequence[Message]) -> Message | None:
    """The returned original (whole, or its headers only), if the report carries it."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if content_type == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                return BytesHeaderParser().parsebytes(body)
    return None


def _verp_reference(
    message: Message,
    original: Message | None,
    envelope_recipients: Sequence[str],
    bounce_address: str | None,
) -> str | None:
    if bounce_address is None:
        return None
    candidates = list(envelope_recipients)
    for name in ("Delivered-To", "X-Original-To", "To"):
        candidates.extend(str(value) for value in message.get_all(name) or [])
    if original is not None:
        candidates.extend(str(value) for value in original.get_all("Return-Path") or [])
    for candidate in candidates:
        address = _plain_address(candidate)
        if address and (found := reference_in_address(address, bounce_address)):
            return found
    return None


def _header(message: Message | None, name: str) -> str | None:
    if message is None:
        return None
    value = message.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _typed_value(value: str | None) -> str | None:
    """ "rfc822; anna@example.org" -> "anna@example.org" (RFC 3464 address and code types)."""
    if not value:
        return None
    kind, separator, rest = value.partition(";")
    return (rest if separator else kind).strip() or None


def _address_field(value: str | None) -> str | None:
    return _plain_address(_typed_value(value))


def _plain_address(value: str | None) -> str | None:
    if not value:
        return None
    _, address = email.utils.parseaddr(value)
    address = address.strip().strip("<>")
    return address.lower() if "@" in address else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"
