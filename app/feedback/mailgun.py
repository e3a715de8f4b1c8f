"""Mailgun webhooks: `{"signature": {timestamp, token, signature}, "event-data": {...}}`,
signed with HMAC-SHA256 of timestamp + token under the webhook signing key. Pure."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from app.feedback.model import MAILGUN, Feedback, FeedbackError, angle_message_id, json_object
from app.models import FeedbackKind

# Our reference as a user variable (the X-Mailgun-Variables header).
VARIABLE = "aftersale"


class SignatureError(ValueError):
    pass


def read_webhook(raw: bytes, *, signing_key: str, now: float, max_age: float) -> dict[str, Any]:
    """The verified `event-data`; SignatureError or FeedbackError otherwise."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise FeedbackError("body: not JSON") from None
    if not isinstance(body, dict):
        raise FeedbackError("body: not a JSON object")
    signature = body.get("signature")
    if not isinstance(signature, dict):
        raise SignatureError("signature: missing")
    timestamp, token, given = (
        str(signature.get(name) or "") for name in ("timestamp", "token", "signature")
    )
    if not timestamp.isdigit() or abs(now - int(timestamp)) > max_age:
        raise SignatureError("signature.timestamp is not recent")
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not token or not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise SignatureError("invalid Mailgun signature")
    event = body.get("event-data")
    if not isinstance(event, dict):
        raise FeedbackError("event-data: missing or not an object")
    return event


def parse_event(event: dict[str, Any]) -> list[Feedback]:
    name = event.get("event")
    severity = str(event.get("severity") or "")
    if name == "failed":
        kind = FeedbackKind.HARD_BOUNCE if severity == "permanent" else FeedbackKind.SOFT_BOUNCE
    elif name == "complained":
        kind = FeedbackKind.COMPLAINT
    else:
        return []
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise FeedbackError("event-data.id: missing")
    recipient = event.get("recipient")
    if not isinstance(recipient, str) or "@" not in recipient:
        raise FeedbackError("event-data.recipient: missing or not an address")
    variables = event.get("user-variables")
    reference = variables.get(VARIABLE) if isinstance(variables, dict) else None
    headers = json_object(json_object(event.get("message")).get("headers"))
    status = json_object(event.get("delivery-status"))
    detail = " ".join(
        str(part)
        for part in (
            f"Mailgun {name}/{severity or '-'}",
            event.get("reason") or "",
            status.get("code") or "",
            status.get("description") or status.get("message") or "",
        )
        if part
    )
    return [
        Feedback(
            provider=MAILGUN,
            event_id=event_id,
            kind=kind,
            recipient=recipient.strip().lower(),
            detail=detail[:500],
            reference=reference if isinstance(reference, str) and reference else None,
            smtp_message_id=angle_message_id(headers.get("message-id")),
        )
    ]
