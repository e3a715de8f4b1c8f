"""Our webhook signature: `v1=` hex HMAC-SHA256 over "{timestamp}.{raw body}".

Shopify and WooCommerce sign differently: base64 HMAC-SHA256 over the raw body alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

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


def sign_body_base64(secret: str, body: bytes) -> str:
    """Shopify's `X-Shopify-Hmac-Sha256` and WooCommerce's `X-WC-Webhook-Signature`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_body_base64(
    *, secrets: Sequence[str], signature_header: str | None, body: bytes
) -> None:
    """Raise SignatureError unless the header is the body's signature under one of `secrets`.

    Several secrets are accepted so a shop can rotate its secret without losing deliveries.
    """
    if not signature_header:
        raise SignatureError("missing signature header")
    if not secrets:
        raise SignatureError("no webhook secret is configured for this shop")
    given = signature_header.strip().encode()
    # Compare against every secret so timing does not reveal which one was close.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given, sign_body_base64(secret, body).encode())
    if not matched:
        raise SignatureError("signature does not match")
