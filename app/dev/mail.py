"""A captured email taken apart for the dev outbox page: headers, text part, HTML part."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


@dataclass(frozen=True)
class OpenedMail:
    headers: list[tuple[str, str]]
    subject: str
    text: str | None
    html: str | None


def open_mail(raw: bytes) -> OpenedMail:
    """The parts a person reads, decoded as a mail client would (RFC 2047, charsets)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return OpenedMail(
        headers=[(name, " ".join(str(value).split())) for name, value in message.items()],
        subject=" ".join(str(message.get("Subject", "")).split()),
        text=text.get_content() if isinstance(text, EmailMessage) else None,
        html=html.get_content() if isinstance(html, EmailMessage) else None,
    )
