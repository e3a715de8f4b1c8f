"""What every source of feedback is reduced to: one report about one recipient. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from app.statuses import FeedbackKind

# Where a report came from: the `provider` of mail_feedback_events.
MAIL = "mail"  # DSN or ARF mail, by the inbound SMTP listener or the IMAP mailbox
SES = "ses"
POSTMARK = "postmark"
SENDGRID = "sendgrid"
MAILGUN = "mailgun"
PROVIDERS = (SES, POSTMARK, SENDGRID, MAILGUN)


class FeedbackError(ValueError):
    """A report that cannot be read; the message names the field, never its value."""


@dataclass(frozen=True)
class Feedback:
    """One bounce or complaint about one recipient.

    The message it is about is found by `reference` (our signed reference, from the VERP
    address, the X-Aftersale-Message header or a provider's metadata), else by
    `smtp_message_id` (the Message-ID we sent), else by `recipient`.
    """

    provider: str
    event_id: str  # unique per provider: what makes a redelivered report harmless
    kind: FeedbackKind
    recipient: str | None
    detail: str
    reference: str | None = None
    smtp_message_id: str | None = None


def event_digest(*parts: str) -> str:
    """An event id made of parts that may hold addresses: stored only as a digest."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def bounce_kind(*, action: str | None, status: str | None) -> FeedbackKind | None:
    """A DSN recipient's outcome (RFC 3464 Action and RFC 3463 Status), or None when it is no
    failure (delivered, relayed, expanded).

    A 5.x.x failure is a hard bounce, except 5.7.x (policy, reputation, authentication):
    the address exists, the server refused the sender, so it is counted as a soft bounce
    and never suppresses the recipient. 4.x.x and "delayed" are soft.
    """
    action = (action or "").strip().lower()
    status = (status or "").strip()
    if action in ("delivered", "relayed", "expanded"):
        return None
    if action == "delayed" or status.startswith("4."):
        return FeedbackKind.SOFT_BOUNCE
    if action == "failed" or status.startswith("5."):
        if status.startswith("5.7."):
            return FeedbackKind.SOFT_BOUNCE
        return FeedbackKind.HARD_BOUNCE
    return None


def angle_message_id(value: str | None) -> str | None:
    """A Message-ID as we store it, "<id@domain>", from "id@domain" or "<id@domain>"."""
    value = (value or "").strip()
    if not value or "@" not in value or len(value) > 250:
        return None
    return value if value.startswith("<") else f"<{value}>"


def json_object(value: object) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (optional parts of payloads)."""
    return value if isinstance(value, dict) else {}
