"""Postmark bounce and spam-complaint webhooks. Pure.

Postmark does not sign webhooks; the URL is protected by HTTP basic auth, which Postmark
sends with every request when the credentials are part of the webhook URL.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from app.feedback.model import POSTMARK, Feedback, FeedbackError, json_object
from app.models import FeedbackKind

# Bounce types (Postmark's "Type") and what they mean to us; any other type (AutoResponder,
# Subscribe, OpenRelayTest...) is not about the address and is ignored.
_HARD = {"HardBounce", "BadEmailAddress"}
_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked", "DMARCPolicy", "ChallengeVerification"}
_COMPLAINT = {"SpamComplaint", "SpamNotification"}
# The metadata key our messages carry (the X-PM-Metadata-aftersale header).
METADATA_KEY = "aftersale"


def check_basic_auth(header: str | None, *, username: str, password: str) -> bool:
    """Whether an Authorization header carries these credentials (constant time)."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{username}:{password}".encode()
    return hmac.compare_digest(given, expected)


def parse_webhook(raw: bytes) -> list[Feedback]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise FeedbackError("body: not JSON") from None
    if not isinstance(body, dict):
        raise FeedbackError("body: not a JSON object")
    record_type = body.get("RecordType")
    if record_type not in ("Bounce", "SpamComplaint"):
        return []  # Delivery, Open, Click, SubscriptionChange: not feedback
    record_id = body.get("ID")
    if not isinstance(record_id, int | str) or isinstance(record_id, bool) or record_id == "":
        raise FeedbackError("ID: missing")
    bounce_type = str(body.get("Type") or "")
    if record_type == "SpamComplaint" or bounce_type in _COMPLAINT:
        kind = FeedbackKind.COMPLAINT
    elif bounce_type in _HARD:
        kind = FeedbackKind.HARD_BOUNCE
    elif bounce_type in _SOFT:
        kind = FeedbackKind.SOFT_BOUNCE
    else:
        return []
    email = body.get("Email")
    if not isinstance(email, str) or "@" not in email:
        raise FeedbackError("Email: missing or not an address")
    metadata = json_object(body.get("Metadata"))
    reference = _text(metadata.get(METADATA_KEY))
    return [
        Feedback(
            provider=POSTMARK,
            event_id=f"{record_type}:{record_id}",
            kind=kind,
            recipient=email.strip().lower(),
            detail=f"Postmark {bounce_type or record_type}: {_text(body.get('Description')) or ''}"[
                :500
            ],
            reference=reference,
        )
    ]


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
