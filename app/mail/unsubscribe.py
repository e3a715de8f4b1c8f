"""Unsubscribe tokens: who a link unsubscribes, signed so nobody can forge one.

A token is urlsafe base64 (no padding) of::

    version (1 byte) | HMAC-SHA256 (32 bytes) | payload

where the payload is the JSON array `[shop, email]` (email lower-cased) and the HMAC, keyed
with an unsubscribe secret, covers a purpose label, the version byte and the payload. The
token names the recipient, not a message, so it keeps working after messages are pruned or
customers deleted; it never expires because unsubscribe links must work for years. Tokens are
signed with the first secret and accepted under any of them, so a new key can be put first
while old links still verify. The payload is signed, not encrypted: the link shows the
address only to whoever already has the mail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.models import MessageKind

_VERSION = 1
_MAC_SIZE = hashlib.sha256().digest_size
# Keys the MAC to this one use, so a signature can never pass for another feature's.
_PURPOSE = b"aftersale-unsubscribe\x00"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# Shop (255) and address (320) columns, JSON-escaped and base64-encoded, fit well within this.
MAX_TOKEN_LENGTH = 2048


@dataclass(frozen=True)
class Recipient:
    """Whom a token unsubscribes: an address (lower-cased) of one shop."""

    shop: str
    email: str


def make_token(*, shop: str, email: str, secrets: Sequence[str]) -> str:
    """A token for `email` of `shop`, signed with the first of `secrets`."""
    if not secrets:
        raise ValueError("at least one unsubscribe secret is needed to sign tokens")
    payload = json.dumps([shop, email.lower()], ensure_ascii=False, separators=(",", ":"))
    body = payload.encode()
    version = bytes([_VERSION])
    raw = version + _mac(secrets[0], version, body) + body
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_token(token: str, *, secrets: Sequence[str]) -> Recipient | None:
    """The recipient a token names, or None for anything not signed by one of `secrets`.

    Callers should not say why a token failed: tampered, foreign and garbled look alike.
    """
    raw = _decode(token)
    if raw is None or len(raw) <= 1 + _MAC_SIZE or raw[0] != _VERSION:
        return None
    version, mac, body = raw[:1], raw[1 : 1 + _MAC_SIZE], raw[1 + _MAC_SIZE :]
    valid = False
    for secret in secrets:  # no early exit: timing does not tell which key matched
        valid |= hmac.compare_digest(mac, _mac(secret, version, body))
    if not valid:
        return None
    try:
        parsed = json.loads(body.decode())
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are
        return None
    if not (isinstance(parsed, list) and len(parsed) == 2):
        return None
    shop, email = parsed
    if not isinstance(shop, str) or not isinstance(email, str) or not email:
        return None
    return Recipient(shop=shop, email=email)


def unsubscribe_url(*, public_url: str, shop: str, email: str, secrets: Sequence[str]) -> str:
    """The one-click link for `email`: `{public_url}/u/{token}`."""
    token = make_token(shop=shop, email=email, secrets=secrets)
    return f"{public_url.rstrip('/')}/u/{token}"


def marketing_unsubscribe_url(
    *, kind: str, public_url: str, shop: str, email: str, secrets: Sequence[str]
) -> str | None:
    """The link for a message of `kind`: marketing mail has one, transactional mail none."""
    if kind != MessageKind.MARKETING:
        return None
    return unsubscribe_url(public_url=public_url, shop=shop, email=email, secrets=secrets)


def _mac(secret: str, version: bytes, body: bytes) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + version + body, hashlib.sha256).digest()


def _decode(token: str) -> bytes | None:
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_CHARS.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # Only the one canonical spelling of a token is accepted (no stray trailing bits).
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        return None
    return raw
