"""Our webhook signature: `v1=` hex HMAC-SHA256 over "{timestamp}.{raw body}"."""

from __future__ import annotations

import hashlib
import hmac

TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The request is not proven to come from the shop; the message says why."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    payload = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(
    *,
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
) -> None:
    """Raise SignatureError unless one `v1=` signature matches and the timestamp is fresh.

    Several comma-separated signatures are accepted so a shop can roll its secret.
    """
    if not timestamp_header or not signature_header:
        raise SignatureError("missing X-Aftersale-Timestamp or X-Aftersale-Signature")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise SignatureError("X-Aftersale-Timestamp must be unix seconds") from None
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError("timestamp outside the 5-minute window")
    expected = sign(secret, timestamp, body)
    candidates = [part.strip() for part in signature_header.split(",")]
    # Compare against every candidate so timing does not reveal which one was close.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    if not matched:
        raise SignatureError("signature does not match")
