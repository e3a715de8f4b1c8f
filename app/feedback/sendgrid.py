"""SendGrid's Event Webhook: a JSON array of events, signed with ECDSA (P-256, SHA-256) over
the X-Twilio-Email-Event-Webhook-Timestamp header followed by the raw body. Pure."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.feedback.model import SENDGRID, Feedback, FeedbackError, angle_message_id
from app.models import FeedbackKind

# Our reference, as a unique argument (X-SMTPAPI header); SendGrid puts it on every event.
ARGUMENT = "aftersale"
# "dropped" reasons that are SendGrid refusing an address it already knows is dead.
_DROPPED_HARD = {"bounced address", "invalid"}
_DROPPED_COMPLAINT = {"spam reporting address"}


class SignatureError(ValueError):
    pass


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or as PEM."""
    text = value.strip()
    if "BEGIN PUBLIC KEY" in text:
        key = serialization.load_pem_public_key(text.encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(text))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the SendGrid verification key is not an elliptic-curve key")
    return key


def verify(
    *,
    public_key: ec.EllipticCurvePublicKey,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: float,
    max_age: float,
) -> None:
    """SignatureError unless SendGrid signed `timestamp + body` lately."""
    if not signature or not timestamp:
        raise SignatureError("missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > max_age:
        raise SignatureError("X-Twilio-Email-Event-Webhook-Timestamp is not recent")
    try:
        der = base64.b64decode(signature, validate=True)
        public_key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureError("invalid SendGrid signature") from None


def parse_events(raw: bytes) -> list[Feedback]:
    try:
        events = json.loads(raw)
    except ValueError:
        raise FeedbackError("body: not JSON") from None
    if not isinstance(events, list):
        raise FeedbackError("body: not a JSON array of events")
    found = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise FeedbackError(f"[{index}]: not an object")
        kind = _kind(event)
        if kind is None:
            continue
        event_id = event.get("sg_event_id")
        if not isinstance(event_id, str) or not event_id:
            raise FeedbackError(f"[{index}].sg_event_id: missing")
        email = event.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise FeedbackError(f"[{index}].email: missing or not an address")
        reason = _text(event.get("reason")) or _text(event.get("response")) or ""
        found.append(
            Feedback(
                provider=SENDGRID,
                event_id=event_id,
                kind=kind,
                recipient=email.strip().lower(),
                detail=f"SendGrid {event['event']}/{event.get('type') or ''} "
                f"{_text(event.get('status')) or ''} {reason}".strip()[:500],
                reference=_text(event.get(ARGUMENT)),
                smtp_message_id=angle_message_id(_text(event.get("smtp-id"))),
            )
        )
    return found


def _kind(event: dict[str, Any]) -> FeedbackKind | None:
    name = event.get("event")
    if name == "bounce":
        # "blocked": the receiver refused the sender (reputation, content), not the address.
        return (
            FeedbackKind.SOFT_BOUNCE
            if event.get("type") == "blocked"
            else (FeedbackKind.HARD_BOUNCE)
        )
    if name == "deferred":
        return FeedbackKind.SOFT_BOUNCE
    if name == "spamreport":
        return FeedbackKind.COMPLAINT
    if name == "dropped":
        reason = str(event.get("reason") or "").lower()
        if reason in _DROPPED_HARD:
            return FeedbackKind.HARD_BOUNCE
        if reason in _DROPPED_COMPLAINT:
            return FeedbackKind.COMPLAINT
    return None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
